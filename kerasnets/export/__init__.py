"""From Keras to ``.tflite`` and back to numbers.

- ``convert``: ``convert(model, precision)`` (fp32, fp16, dynamic, int8 PTQ or QAT), atomic
  writes.
- ``int8_forms``: the flatbuffer rewrites that keep int8 graphs in one XNNPACK partition, the
  record of the forms written, TFLite metadata entries.
- ``interpreter``: running ``.tflite`` models with LiteRT (the one place an interpreter is
  built); ops, XNNPACK partitions, tensor dtypes, accuracy and agreement.
- ``stages``: early-exit models as per-stage ``.tflite`` files and ``StagedRuntime``.
"""

from kerasnets.export.convert import (
    PRECISIONS, check_precision, check_writable_dir, convert, write_atomic,
)
from kerasnets.export.int8_forms import written_forms
from kerasnets.export.interpreter import (
    accuracy, agreement, inner_tensor_dtypes, load_interpreter, op_histogram, tflite_op_names,
    tflite_predict, top1, undelegated_ops, xnnpack_partitions,
)

__all__ = [
    "PRECISIONS", "check_precision", "check_writable_dir", "convert", "write_atomic",
    "written_forms",
    "accuracy", "agreement", "inner_tensor_dtypes", "load_interpreter", "op_histogram",
    "tflite_op_names", "tflite_predict", "top1", "undelegated_ops", "xnnpack_partitions",
]
