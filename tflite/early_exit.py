"""Evaluate early-exit TFLite stages on an image folder; the same as ``kerasnets early-exit``.

    python tflite/early_exit.py --stages out/early_exit/fp32/early_exit.json \\
        --data ../shared/data/cifar10/test --thresholds 0.9
"""

from kerasnets.cli import run

if __name__ == "__main__":
    run("early-exit", prog="python tflite/early_exit.py")
