"""Train, quantize and convert a kerasnets model to TensorFlow Lite, then evaluate it.

The design card's command line; the same as ``kerasnets convert`` (``kerasnets.cli.convert``).

    python tflite/convert.py --model mobilenet_v3_small --precision int8 --qat --out out/v3s
"""

import sys

from kerasnets.cli import convert

if __name__ == "__main__":
    sys.exit(convert.main(prog="python tflite/convert.py"))
