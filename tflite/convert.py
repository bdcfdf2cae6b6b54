"""Train, quantize and convert a kerasnets model to TensorFlow Lite, then evaluate it.

    python tflite/convert.py --model mobilenet_v3_small --precision int8 --qat --out out/v3s

The pipeline: build the registered model for the data's classes (optionally from ``--weights``);
train the float model for ``--epochs``; with ``--qat``, quantization-aware fine-tuning
(``kerasnets.qat.quantize_model``) for ``--qat-epochs``; convert at ``--precision`` (int8 without
``--qat`` is post-training full-integer quantization calibrated on ``--data`` images); rewrite
the int8 graph for XNNPACK (``kerasnets.int8_forms.postprocess_tflite``); evaluate the Keras and
TFLite models on ``--eval-data``; write the ``.tflite`` file and ``report.json`` into ``--out``.

Without ``--data`` the embedded CIFAR-10 subset that ships with kerasnets is used (train split
for training and calibration, test split for evaluation). With ``--data`` but no
``--eval-data``, 10 % of each class of ``--data`` is held out for evaluation.

Files are written atomically (a temporary file in ``--out`` renamed into place), and only after
conversion and evaluation succeeded, so a failed run leaves no partial ``.tflite``.
"""

import argparse
import collections
import contextlib
import dataclasses
import itertools
import json
import logging
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np
from tqdm import tqdm

if __package__ in (None, ""):
    # Run as `python tflite/convert.py`: make the repository root (kerasnets) importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

log = logging.getLogger("kerasnets.convert")

PRECISIONS = ("fp32", "fp16", "dynamic", "int8")
HOLDOUT_FRACTION = 0.1


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
        ``kerasnets.qat.quantize_model``. A model with several inputs (an MSDNet stage reads one
        feature map per scale) gets signature inputs ``input_0``, ``input_1``, ... in the order
        of ``model.inputs``.
      precision: ``"fp32"``; ``"fp16"`` (float16 weights); ``"dynamic"`` (int8 weights, float
        activations); ``"int8"`` (full-integer: int8 weights and activations, calibrated on
        ``representative_data``; a QAT model keeps the ranges it learned).
      representative_data: for ``"int8"``, a float32 array ``(n, rows, cols, channels)`` of
        preprocessed inputs (the TF 2.21 converter needs it for QAT models too); for a model
        with several inputs, a list of such arrays, one per input, ``n`` samples each.
      int8_io: int8 model inputs and outputs instead of float ones (``"int8"`` only).
      hard_swish: int8 form of hard-swish (``kerasnets.int8_forms``): ``"xnnpack"`` (default,
        one XNNPACK partition) or ``"fused"`` (the ``HARD_SWISH`` op).
      progress: show calibration progress and a running clock.
    """
    import tensorflow as tf

    from kerasnets.int8_forms import check_hard_swish_form, postprocess_tflite

    check_precision(precision, int8_io=int8_io)
    check_hard_swish_form(hard_swish)
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
    with _elapsed(f"converting {model.name} to {precision} TFLite", progress):
        tflite_model = converter.convert()
    if precision == "int8":
        tflite_model = postprocess_tflite(tflite_model, hard_swish=hard_swish)
    return bytes(tflite_model)


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


def _interpreter(tflite_model, num_threads=2, delegates=True):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs = {} if delegates else {
        "experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    interpreter = Interpreter(model_content=bytes(tflite_model), num_threads=num_threads, **kwargs)
    interpreter.allocate_tensors()
    return interpreter


def op_histogram(tflite_model):
    """Returns ``{op name: count}`` of the builtin ops of a ``.tflite`` model (no delegation)."""
    ops = _interpreter(tflite_model, delegates=False)._get_ops_details()
    return dict(sorted(collections.Counter(op["op_name"] for op in ops).items()))


def xnnpack_partitions(tflite_model, num_threads=2):
    """Returns the number of XNNPACK partitions LiteRT makes of the model (1 = fully delegated)."""
    ops = _interpreter(tflite_model, num_threads=num_threads)._get_ops_details()
    return sum(op["op_name"] == "DELEGATE" for op in ops)


def tflite_predict(tflite_model, inputs, num_threads=2, progress=False):
    """Returns the float32 outputs of a ``.tflite`` model for a batch of preprocessed ``inputs``.

    Runs LiteRT's ``Interpreter`` one image at a time; int8 inputs are quantized and int8
    outputs dequantized with the model's own scales and zero points.
    """
    interpreter = _interpreter(tflite_model, num_threads=num_threads)
    inputs_details, outputs_details = (interpreter.get_input_details(),
                                       interpreter.get_output_details())
    if len(inputs_details) != 1 or len(outputs_details) != 1:
        raise ValueError(
            f"tflite_predict runs single-input, single-output models; this one has "
            f"{len(inputs_details)} inputs and {len(outputs_details)} outputs"
        )
    (inp,), (out,) = inputs_details, outputs_details
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    results = []
    for x in tqdm(np.asarray(inputs, dtype="float32"), desc="TFLite inference", unit="img",
                  disable=None if progress else True, leave=False):
        if inp["dtype"] == np.int8:
            x = np.clip(np.round(x / in_scale + in_zero), -128, 127)
        interpreter.set_tensor(inp["index"], x[None].astype(inp["dtype"]))
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])[0]
        if out["dtype"] == np.int8:
            y = (y.astype("float32") - out_zero) * out_scale
        results.append(y.astype("float32"))
    return np.stack(results)


def top1(outputs):
    """Returns the top-1 class index of each row of ``outputs``."""
    return np.argmax(np.asarray(outputs).reshape(len(outputs), -1), axis=-1)


def accuracy(outputs, labels):
    """Returns the top-1 accuracy (0-1) of ``outputs`` against integer ``labels``."""
    return float(np.mean(top1(outputs) == np.asarray(labels)))


def agreement(outputs_a, outputs_b):
    """Returns the fraction (0-1) of images on which two models' top-1 classes agree."""
    return float(np.mean(top1(outputs_a) == top1(outputs_b)))


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
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _fit_verbosity():
    # Keras progress bars redraw one line: fine on a terminal, a wall of text in a log file.
    return 1 if sys.stdout.isatty() else 2


@contextlib.contextmanager
def short_run_bn_momentum(model, steps):
    """Lowers the BatchNormalization momentum of ``model`` (QAT wrappers included) for a run of
    ``steps`` training steps, and restores it afterwards.

    A moving average with momentum ``m`` keeps ``m ** steps`` of its initial value: MobileNetV3's
    0.999 (ImageNet-length training) keeps 62 % of the initial mean 0 / variance 1 after 480
    steps, and the trained model then predicts one class at inference. The momentum used is
    ``min(m, max(0.9, 1 - 10 / steps))``, which forgets the initial value (below ``e ** -10``)
    and leaves long runs untouched.
    """
    from kerasnets._keras import keras

    target = max(0.9, 1.0 - 10.0 / max(1, steps))
    changed = [(layer, layer.momentum) for layer in model.submodules
               if isinstance(layer, keras.layers.BatchNormalization) and layer.momentum > target]
    for layer, _ in changed:
        layer.momentum = target
    try:
        yield
    finally:
        for layer, momentum in changed:
            layer.momentum = momentum


def train(model, image_set, mode, epochs, learning_rate, batch_size=64, seed=0):
    """Returns the Keras ``History`` of training ``model`` on an ``ImageSet`` (augmented).

    Adam with a cosine-decayed learning rate, sparse categorical cross-entropy on the model's
    softmax output; BatchNormalization momentum fitted to the run's length
    (``short_run_bn_momentum``).
    """
    from kerasnets._keras import keras
    from kerasnets.data import as_dataset

    steps = epochs * math.ceil(len(image_set) / batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, max(1, steps))
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    dataset = as_dataset(image_set.images, image_set.labels, mode, batch_size, training=True,
                         seed=seed)
    with short_run_bn_momentum(model, steps):
        return model.fit(dataset, epochs=epochs, verbose=_fit_verbosity())


def keras_predict(model, image_set, mode, batch_size=256):
    """Returns the float32 outputs of a Keras model on an ``ImageSet``."""
    from kerasnets.data import as_dataset

    def images_only(images, labels):
        return images

    dataset = as_dataset(image_set.images, image_set.labels, mode, batch_size).map(images_only)
    return model.predict(dataset, verbose=_fit_verbosity())


@dataclasses.dataclass
class Options:
    """What ``run`` does; the fields mirror the command-line flags (see ``--help``)."""

    model: str
    out: Path
    precision: str = "int8"
    qat: bool = False
    input_size: Optional[int] = None
    classes: Optional[int] = None
    weights: Optional[str] = None
    data: Optional[Path] = None
    eval_data: Optional[Path] = None
    epochs: int = 10
    qat_epochs: int = 2
    learning_rate: float = 2e-3
    qat_learning_rate: float = 2e-4
    batch_size: int = 64
    calibration_images: int = 200
    hard_swish: str = "xnnpack"
    int8_io: bool = False
    compare_fp32: bool = False
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    seed: int = 0
    progress: bool = True


def _check_options(opts):
    """Returns the registry entry of ``opts.model`` after validating every option."""
    from kerasnets.convention import check_positive_int
    from kerasnets.int8_forms import check_hard_swish_form
    from kerasnets.registry import get_entry

    entry = get_entry(opts.model)
    check_precision(opts.precision, opts.qat, opts.int8_io)
    check_hard_swish_form(opts.hard_swish)
    for name in ("epochs", "qat_epochs"):
        value = getattr(opts, name)
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"`{name}` must be an integer >= 0; received {name}={value!r}")
    for name in ("batch_size", "calibration_images"):
        check_positive_int(name, getattr(opts, name))
    if opts.input_size is not None:
        check_positive_int("input_size", opts.input_size)
        if opts.input_size < entry.min_size:
            raise ValueError(
                f"--input-size must be at least {entry.min_size} for {opts.model}; received "
                f"--input-size {opts.input_size}"
            )
    if opts.classes is not None:
        check_positive_int("classes", opts.classes)
    if opts.eval_data is not None and opts.data is None:
        raise ValueError("--eval-data needs --data (the embedded dataset has its own test split)")
    return entry


def load_data(opts, image_size):
    """Returns ``(train_set, eval_set)`` ``ImageSet`` objects for ``opts`` (see module docs)."""
    from kerasnets import data

    if opts.data is None:
        train_set = data.load_image_folder(data.embedded_dataset("train"), image_size,
                                           progress=opts.progress)
        eval_set = data.load_image_folder(data.embedded_dataset("test"), image_size,
                                          progress=opts.progress)
    elif opts.eval_data is None:
        train_set = data.load_image_folder(opts.data, image_size, progress=opts.progress)
        log.info("no --eval-data: holding out %.0f%% of each class of %s for evaluation",
                 100 * HOLDOUT_FRACTION, opts.data)
        train_set, eval_set = data.split_holdout(train_set, HOLDOUT_FRACTION, opts.seed)
    else:
        # Compare the class folders before decoding anything.
        data.check_same_classes(data.class_names(opts.data), data.class_names(opts.eval_data))
        train_set = data.load_image_folder(opts.data, image_size, progress=opts.progress)
        eval_set = data.load_image_folder(opts.eval_data, image_size, progress=opts.progress)
    data.check_same_classes(train_set, eval_set)
    if len(eval_set) == 0:
        raise ValueError(f"no evaluation images in {eval_set.source}")
    return train_set, eval_set


def pick_calibration_images(image_set, count, seed):
    """Returns up to ``count`` images of ``image_set``, drawn at random in turn from each class
    so that a small calibration set still covers every class."""
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(image_set.labels == c))
                 for c in range(len(image_set.class_names))]
    order = [i for row in itertools.zip_longest(*per_class) for i in row if i is not None]
    return image_set.images[np.sort(order[:count])]


def tflite_name(opts):
    """Returns the file name of the ``.tflite`` model ``run`` writes for ``opts``."""
    return f"{opts.model}_{opts.precision}{'_qat' if opts.qat else ''}.tflite"


def run(opts):
    """Returns the report (a dict, also written as ``report.json``) of the whole pipeline.

    Raises ``ValueError`` on bad input (unknown model, missing/empty data folders, class sets
    that differ, bad options, an output folder that cannot be written), before any training.
    """
    from kerasnets import data
    from kerasnets._keras import keras
    from kerasnets.registry import create_model

    entry = _check_options(opts)
    out = check_writable_dir(opts.out)
    image_size = opts.input_size or max(32, entry.min_size)
    mode = data.preprocessing_mode(entry, opts.model_kwargs)

    log.info("loading data (%dx%d images)", image_size, image_size)
    train_set, eval_set = load_data(opts, image_size)
    num_classes = len(train_set.class_names)
    if opts.classes is not None and opts.classes != num_classes:
        raise ValueError(
            f"--classes {opts.classes} does not match the {num_classes} class folders of the "
            f"data ({', '.join(train_set.class_names)})"
        )
    log.info("%d training images, %d evaluation images, %d classes; %s inputs",
             len(train_set), len(eval_set), num_classes, mode)

    keras.utils.set_random_seed(opts.seed)
    model = create_model(opts.model, input_shape=(image_size, image_size, 3),
                         classes=num_classes, weights=opts.weights, **opts.model_kwargs)
    if len(model.outputs) != 1:
        raise ValueError(
            f"--model {opts.model} has {len(model.outputs)} outputs (one per exit); this "
            "pipeline trains and evaluates single-output classifiers"
        )
    report = {"model": opts.model, "model_kwargs": opts.model_kwargs, "input_size": image_size,
              "classes": num_classes, "class_names": list(train_set.class_names),
              "preprocessing": mode, "precision": opts.precision, "qat": opts.qat,
              "hard_swish": opts.hard_swish, "int8_io": opts.int8_io,
              "weights": str(opts.weights) if opts.weights else None,
              "data": train_set.source, "eval_data": eval_set.source,
              "train_images": len(train_set), "eval_images": len(eval_set),
              "skipped_images": len(set(train_set.skipped) | set(eval_set.skipped)),
              "epochs": opts.epochs, "qat_epochs": opts.qat_epochs if opts.qat else 0}

    start = time.perf_counter()
    if opts.epochs:
        log.info("training the float model: %d epochs", opts.epochs)
        train(model, train_set, mode, opts.epochs, opts.learning_rate, opts.batch_size, opts.seed)
    report["train_seconds"] = round(time.perf_counter() - start, 1)
    log.info("evaluating the float Keras model")
    float_outputs = keras_predict(model, eval_set, mode)
    report["float_accuracy"] = accuracy(float_outputs, eval_set.labels)

    source, source_outputs = model, float_outputs
    report["qat_accuracy"] = None
    if opts.qat:
        from kerasnets.qat import quantize_model

        start = time.perf_counter()
        source = quantize_model(model)
        log.info("quantization-aware fine-tuning: %d epochs", opts.qat_epochs)
        if opts.qat_epochs:
            train(source, train_set, mode, opts.qat_epochs, opts.qat_learning_rate,
                  opts.batch_size, opts.seed)
        report["qat_seconds"] = round(time.perf_counter() - start, 1)
        source_outputs = keras_predict(source, eval_set, mode)
        report["qat_accuracy"] = accuracy(source_outputs, eval_set.labels)

    calibration = None
    if opts.precision == "int8":
        calibration = data.preprocess(
            pick_calibration_images(train_set, opts.calibration_images, opts.seed), mode)
        report["calibration_images"] = len(calibration)
    log.info("converting to %s TFLite%s", opts.precision, " (QAT)" if opts.qat else "")
    start = time.perf_counter()
    tflite_model = convert(source, opts.precision, calibration, int8_io=opts.int8_io,
                           hard_swish=opts.hard_swish, progress=opts.progress)
    report["convert_seconds"] = round(time.perf_counter() - start, 1)

    log.info("evaluating the TFLite model")
    tflite_outputs = tflite_predict(tflite_model, data.preprocess(eval_set.images, mode),
                                    progress=opts.progress)
    report["tflite_accuracy"] = accuracy(tflite_outputs, eval_set.labels)
    # "The Keras model it came from": the QAT model for --qat, the float model otherwise.
    report["agreement"] = agreement(tflite_outputs, source_outputs)
    report["agreement_with_float"] = agreement(tflite_outputs, float_outputs)
    report["size_bytes"] = len(tflite_model)
    report["ops"] = op_histogram(tflite_model)
    report["xnnpack_partitions"] = xnnpack_partitions(tflite_model)
    if opts.compare_fp32:
        log.info("converting the float model to fp32 TFLite for comparison")
        fp32_model = tflite_model if opts.precision == "fp32" and not opts.qat else convert(
            model, "fp32", progress=opts.progress)
        fp32_outputs = tflite_predict(fp32_model, data.preprocess(eval_set.images, mode),
                                      progress=opts.progress)
        report["fp32_size_bytes"] = len(fp32_model)
        report["fp32_tflite_accuracy"] = accuracy(fp32_outputs, eval_set.labels)

    tflite_path = out / tflite_name(opts)
    report["tflite_path"] = str(tflite_path)
    write_atomic(tflite_path, tflite_model)
    try:
        write_atomic(out / "report.json", (json.dumps(report, indent=2) + "\n").encode())
    except BaseException:
        # A model without its report would look like a finished run.
        tflite_path.unlink()
        raise
    log.info("wrote %s (%d bytes) and %s", tflite_path, len(tflite_model), out / "report.json")
    return report


def build_parser():
    """Returns the ``argparse`` parser of the command line."""
    parser = argparse.ArgumentParser(
        prog="python tflite/convert.py", description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 on success, 2 on bad input (the message says what), 1 on other "
               "errors.")
    parser.add_argument("--model", required=True, help="registered model name "
                        "(python -c 'import kerasnets; print(kerasnets.list_models())')")
    parser.add_argument("--input-size", type=int, help="square input side (default: 32, the "
                        "embedded dataset's, or the model's smallest)")
    parser.add_argument("--classes", type=int,
                        help="number of classes; must match the class folders of the data")
    parser.add_argument("--weights", help="initial weights (.h5 of kerasnets or "
                        "keras.applications built with the same arguments)")
    parser.add_argument("--precision", choices=PRECISIONS, default="int8",
                        help="TFLite precision (default: %(default)s)")
    parser.add_argument("--qat", action="store_true", help="quantization-aware fine-tuning "
                        "before full-integer conversion (needs --precision int8)")
    parser.add_argument("--epochs", type=int, default=Options.epochs,
                        help="float training epochs, 0 to skip (default: %(default)s)")
    parser.add_argument("--qat-epochs", type=int, default=Options.qat_epochs,
                        help="quantization-aware fine-tuning epochs (default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=Options.learning_rate,
                        help="Adam learning rate of float training, cosine-decayed "
                             "(default: %(default)s)")
    parser.add_argument("--qat-learning-rate", type=float, default=Options.qat_learning_rate,
                        help="learning rate of QAT fine-tuning (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=Options.batch_size,
                        help="training batch size (default: %(default)s)")
    parser.add_argument("--data", type=Path, help="image folder (one sub-folder per class) for "
                        "training and int8 calibration (default: the embedded CIFAR-10 subset)")
    parser.add_argument("--eval-data", type=Path, help="image folder for evaluation, with the "
                        "same classes (default: 10%% of --data held out)")
    parser.add_argument("--calibration-images", type=int, default=Options.calibration_images,
                        help="images of --data for int8 calibration (default: %(default)s)")
    parser.add_argument("--hard-swish", choices=("xnnpack", "fused"), default="xnnpack",
                        help="int8 form of hard-swish: xnnpack (MUL/ADD/MUL, one XNNPACK "
                             "partition) or fused (HARD_SWISH op) (default: %(default)s)")
    parser.add_argument("--int8-io", action="store_true",
                        help="int8 model inputs and outputs (default: float)")
    parser.add_argument("--compare-fp32", action="store_true",
                        help="also convert the float model to fp32 TFLite (not written) and "
                             "report its size and accuracy")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("out/convert"),
                        help="output folder for the .tflite and report.json "
                             "(default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv=None):
    """Returns the exit status of the command line (0 success, 2 bad input, 1 other errors)."""
    args = build_parser().parse_args(argv)
    from kerasnets.cli import call_reporting_errors, configure_logging

    configure_logging()
    opts = Options(
        model=args.model, out=args.out, precision=args.precision, qat=args.qat,
        input_size=args.input_size, classes=args.classes, weights=args.weights,
        data=args.data, eval_data=args.eval_data, epochs=args.epochs,
        qat_epochs=args.qat_epochs, learning_rate=args.learning_rate,
        qat_learning_rate=args.qat_learning_rate, batch_size=args.batch_size,
        calibration_images=args.calibration_images, hard_swish=args.hard_swish,
        int8_io=args.int8_io, compare_fp32=args.compare_fp32, seed=args.seed,
        progress=not args.no_progress,
    )
    status, report = call_reporting_errors(log, run, opts)
    if status:
        return status
    print(json.dumps({k: report[k] for k in (
        "model", "precision", "qat", "tflite_path", "size_bytes", "float_accuracy",
        "qat_accuracy", "tflite_accuracy", "agreement", "xnnpack_partitions",
        "convert_seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
