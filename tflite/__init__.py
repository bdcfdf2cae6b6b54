"""TFLite conversion of kerasnets models (``tflite/convert.py``), importable from the repository
root as ``tflite.convert``."""
