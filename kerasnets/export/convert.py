"""TFLite conversion of a Keras model: fp32, fp16, dynamic-range and full-integer int8.

``convert`` is the one converter of kerasnets: the float model, a QAT model
(``kerasnets.quantization``) or an early-exit stage go through it, and its int8 graphs are
rewritten for XNNPACK (``kerasnets.export.int8_forms.postprocess_tflite``);
``tflite_converter`` gives the TFLite converter it runs, for the graph before those rewrites.
Files are written with ``write_atomic`` (complete or absent, never partial).
"""

import contextlib
import os
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

PRECISIONS = ("fp32", "fp16", "dynamic", "int8")


def check_precision(precision, qat=False, int8_io=False):
    """Returns ``precision`` after checking it, and ``qat``/``int8_io``, are allowed with it."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"`precision` must be one of {PRECISIONS}; received precision={precision!r}")
    if qat and precision != "int8":
        raise ValueError(
            f"--qat (quantization-aware training) produces an int8 model; it needs "
            f"--precision int8, received --precision {precision}"
        )
    if int8_io and precision != "int8":
        raise ValueError(f"--int8-io needs --precision int8; received --precision {precision}")
    return precision


@contextlib.contextmanager
def _elapsed(desc, enabled=True):
    """Shows ``desc`` with a running clock while the block runs (a blocking call's progress)."""
    # disable=None: on a terminal only, not in logs.
    bar = tqdm(desc=desc, bar_format="{desc}: {elapsed}", disable=None if enabled else True,
               leave=False)
    stop = threading.Event()

    def tick():
        while not stop.wait(1.0):
            bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.close()


def convert(model, precision, representative_data=None, *, int8_io=False, hard_swish="xnnpack",
            progress=False):
    """Returns the ``.tflite`` flatbuffer (bytes) of a Keras model converted at ``precision``.

    Args:
      model: a float Keras model, or (for ``"int8"``) a QAT model from
        ``kerasnets.quantization.qat.quantize_model``. A model with several inputs (an MSDNet stage reads one
        feature map per scale) gets signature inputs ``input_0``, ``input_1``, ... in the order
        of ``model.inputs``.
      precision: ``"fp32"``; ``"fp16"`` (float16 weights); ``"dynamic"`` (int8 weights, float
        activations); ``"int8"`` (full-integer: int8 weights and activations, calibrated on
        ``representative_data``; a QAT model keeps the ranges it learned). With float inputs
        and outputs the exit softmax runs in float after the last ``DEQUANTIZE``, where
        XNNPACK takes it.
      representative_data: for ``"int8"``, a float32 array ``(n, rows, cols, channels)`` of
        preprocessed inputs (the TF 2.21 converter needs it for QAT models too); for a model
        with several inputs, a list of such arrays, one per input, ``n`` samples each.
      int8_io: int8 model inputs and outputs instead of float ones (``"int8"`` only): an
        integer-only graph, int8/int32 in every tensor (the exit softmax an int8 ``SOFTMAX``).
      hard_swish: int8 form of hard-swish (``kerasnets.export.int8_forms``): ``"xnnpack"`` (default,
        one XNNPACK partition) or ``"fused"`` (the ``HARD_SWISH`` op).
        ``kerasnets.export.int8_forms.written_forms`` reads back the forms an int8 model holds.
      progress: show calibration progress and a running clock.
    """
    from kerasnets.export.int8_forms import check_hard_swish_form, postprocess_tflite

    check_precision(precision, int8_io=int8_io)
    check_hard_swish_form(hard_swish)
    converter = tflite_converter(model, precision, representative_data, int8_io=int8_io,
                                 progress=progress)
    with _elapsed(f"converting {model.name} to {precision} TFLite", progress), \
            warnings.catch_warnings():
        # TF's calibrator builds a tf.lite.Interpreter for models with several inputs, which
        # warns of its own deprecation: nothing a caller can act on.
        warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated")
        tflite_model = converter.convert()
    if precision == "int8":
        tflite_model = postprocess_tflite(tflite_model, hard_swish=hard_swish)
    return bytes(tflite_model)


def tflite_converter(model, precision, representative_data=None, *, int8_io=False,
                     progress=False):
    """Returns the ``tf.lite.TFLiteConverter`` that ``convert`` runs, set up for ``precision``.

    Its ``convert()`` gives the model as the TFLite converter writes it, before kerasnets' int8
    rewrites (``kerasnets.export.int8_forms.postprocess_tflite``): the baseline those rewrites
    are measured against. Arguments and errors are ``convert``'s.
    """
    import tensorflow as tf

    check_precision(precision, int8_io=int8_io)
    if len(model.inputs) == 1:
        specs = [tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32)]

        def inference(images):
            return model(images, training=False)
    else:
        specs = [tf.TensorSpec((None,) + tuple(x.shape[1:]), tf.float32, name=f"input_{i}")
                 for i, x in enumerate(model.inputs)]

        def inference(*inputs):
            return model(list(inputs), training=False)

    function = tf.function(inference).get_concrete_function(*specs)
    # The converter saves its argument as a SavedModel first. A plain module holding the
    # variables saves fast; TFLiteConverter.from_keras_model saves the Keras model, tracing
    # every layer for serialization: MobileNetV2 took 23 s of CPU that way, 6 s this way.
    holder = tf.Module()
    holder.model_variables = list(model.variables)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], holder)
    if precision != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if precision == "int8":
        samples = _calibration_inputs(representative_data, len(specs))

        def representative_dataset():
            for i in tqdm(range(len(samples[0])), desc="calibrating", unit="img",
                          disable=None if progress else True, leave=False):
                if len(samples) == 1:
                    yield [samples[0][i:i + 1]]
                else:  # by signature input name: the converter orders its inputs otherwise
                    yield {spec.name: a[i:i + 1] for spec, a in zip(specs, samples)}

        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    return converter


def _calibration_inputs(representative_data, num_inputs):
    """Returns ``representative_data`` as a list of float32 arrays, one per model input."""
    if representative_data is None or len(representative_data) == 0:
        raise ValueError("`representative_data` must hold calibration images for int8 conversion")
    arrays = [representative_data] if num_inputs == 1 else list(representative_data)
    arrays = [np.asarray(a, dtype="float32") for a in arrays]
    if len(arrays) != num_inputs or len({len(a) for a in arrays}) != 1 or not len(arrays[0]):
        raise ValueError(
            f"`representative_data` must be one array of samples per model input ({num_inputs}), "
            f"all with the same number of samples; received {len(arrays)} arrays of lengths "
            f"{[len(a) for a in arrays]}")
    return arrays


def check_writable_dir(path):
    """Returns ``path`` as a ``Path`` after creating it if needed and checking files can be written
    there; raises ``ValueError`` if not."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise ValueError(f"output folder {str(path)!r} cannot be written: {err}") from err
    return path


def write_atomic(path, data):
    """Returns ``path`` after writing ``data`` (bytes) to it through a temporary file in the same
    folder renamed into place: the file is complete or absent, never partial."""
    path = Path(path)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates the file 0600; give it the mode open() would (0666 less the umask).
    umask = os.umask(0)
    os.umask(umask)
    try:
        with os.fdopen(handle, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~umask)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
