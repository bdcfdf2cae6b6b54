"""Train, quantize and convert a kerasnets model to TensorFlow Lite, then evaluate it.

The design card's command line; the same as ``kerasnets convert`` (``kerasnets.cli.convert``).

    python tflite/convert.py --model mobilenet_v3_small --precision int8 --qat --out out/v3s
"""

from kerasnets.cli import run

if __name__ == "__main__":
    run("convert", prog="python tflite/convert.py")
