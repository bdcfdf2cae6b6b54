"""From Keras to ``.tflite`` and back to numbers.

- ``convert``: ``convert(model, precision)`` (fp32, fp16, dynamic, int8 PTQ or QAT), atomic
  writes.
- ``int8_forms``: the flatbuffer rewrites that keep int8 graphs in one XNNPACK partition.
- ``interpreter``: running ``.tflite`` models with LiteRT; accuracy and agreement.
- ``stages``: early-exit models as per-stage ``.tflite`` files and ``StagedRuntime``.
"""

from kerasnets.export.convert import (
    PRECISIONS, check_precision, check_writable_dir, convert, write_atomic,
)
from kerasnets.export.interpreter import (
    accuracy, agreement, op_histogram, tflite_predict, top1, xnnpack_partitions,
)

__all__ = [
    "PRECISIONS", "check_precision", "check_writable_dir", "convert", "write_atomic",
    "accuracy", "agreement", "op_histogram", "tflite_predict", "top1", "xnnpack_partitions",
]
