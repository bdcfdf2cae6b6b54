"""The main job of kerasnets: train, quantize and convert a registered model to TensorFlow Lite,
then evaluate it and write the ``.tflite`` file with its report.

The pipeline: build the registered model for the data's classes (optionally from ``weights``;
with ``new_head``, every layer but the classifier from ``weights``: transfer learning); train
the float model for ``epochs`` (none by default: it converts the model as given); with ``qat``,
quantization-aware fine-tuning
(``kerasnets.quantization.quantize_model``) for ``qat_epochs``; convert at ``precision`` (int8
without ``qat`` is post-training full-integer quantization calibrated on ``data`` images);
evaluate the Keras and TFLite models on ``eval_data``; write the ``.tflite`` file and its report
into ``out``: ``<model>_<precision>[_qat].tflite`` and ``<model>_<precision>[_qat].json``, so that
several precisions converted into one folder keep one report each.

Without ``data`` the embedded CIFAR-10 subset that ships with kerasnets is used (train split
for training and calibration, test split for evaluation). With ``data`` but no ``eval_data``,
10 % of each class of ``data`` is held out for evaluation.

Files are written atomically, and only after conversion and evaluation succeeded, so a failed
run leaves no partial ``.tflite``.
"""

import contextlib
import dataclasses
import itertools
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

from kerasnets.export.convert import check_precision, check_writable_dir, convert, write_atomic
from kerasnets.export.int8_forms import written_forms
from kerasnets.export.interpreter import (
    accuracy, agreement, op_histogram, tflite_predict, xnnpack_partitions,
)

log = logging.getLogger("kerasnets.convert")

HOLDOUT_FRACTION = 0.1


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
    """Returns the ``kerasnets.training.fit.FitResult`` of training ``model`` in place on an
    ``ImageSet``.

    The one training loop, ``kerasnets.training.fit``, with the ``"finetune"`` recipe (Adam,
    cosine decay from ``learning_rate``, CIFAR augmentation, no weight decay); epochs of
    ``ceil(len(image_set) / batch_size)`` steps, so that a folder smaller than a batch still
    trains; BatchNormalization momentum fitted to the run's length (``short_run_bn_momentum``).
    """
    from kerasnets.data import loader
    from kerasnets.training.fit import fit

    steps_per_epoch = math.ceil(len(image_set) / batch_size)
    inputs = loader.Input(loader.from_image_set(image_set), image_set.images.shape[1], mode,
                          batch_size, augment="cifar", seed=seed,
                          steps_per_epoch=steps_per_epoch)
    with short_run_bn_momentum(model, epochs * steps_per_epoch):
        return fit(model, inputs, recipe="finetune", epochs=epochs, learning_rate=learning_rate,
                   strategy="default")


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
    new_head: bool = False
    data: Optional[Path] = None
    eval_data: Optional[Path] = None
    epochs: int = 0
    qat_epochs: int = 2
    learning_rate: float = 2e-3
    qat_learning_rate: float = 2e-4
    batch_size: int = 64
    calibration_images: int = 200
    hard_swish: str = "xnnpack"
    int8_io: bool = False
    compare_fp32: bool = False
    compare_ptq: bool = False
    latency_threads: int = 0
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    seed: int = 0
    progress: bool = True


def _check_options(opts):
    """Returns the registry entry of ``opts.model`` after validating every option."""
    from kerasnets.models.convention import check_positive_int
    from kerasnets.export.int8_forms import check_hard_swish_form
    from kerasnets.models.registry import get_entry

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
    if not isinstance(opts.latency_threads, int) or opts.latency_threads < 0:
        raise ValueError(f"`latency_threads` must be an integer >= 0; received "
                         f"latency_threads={opts.latency_threads!r}")
    if opts.latency_threads and not opts.compare_fp32:
        raise ValueError("`latency_threads` times the model against its fp32 conversion; it "
                         "needs compare_fp32=True")
    if opts.new_head and opts.weights is None:
        raise ValueError("--new-head loads --weights into all but the classifier; it needs "
                         "--weights")
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


def compare_latency(tflite_models, threads, rounds=5, runs=20):
    """Returns ``{"threads", "cpu", "<name>_ms": median latency, "ratio": last / first}`` of
    ``tflite_models`` (``{name: flatbuffer bytes}``, e.g. fp32 then int8) on this host.

    Each model runs ``rounds`` times ``runs`` invocations through LiteRT with XNNPACK
    (``kerasnets.bench.local.benchmark_local``), the models taking turns so that load changes on
    a noisy machine touch both; the latency is the median of the rounds' medians (ms).
    """
    import tempfile

    from kerasnets.bench.local import benchmark_local, host_cpu_line

    medians = {name: [] for name in tflite_models}
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for name, flatbuffer in tflite_models.items():
            paths[name] = Path(folder) / f"{name}.tflite"
            paths[name].write_bytes(flatbuffer)
        for _ in range(rounds):
            for name, path in paths.items():
                result = benchmark_local(path, threads, "xnnpack", runs=runs, min_secs=0.2,
                                         warmup_min_secs=0.1)
                medians[name].append(result["median_us"] / 1000.0)
    latency = {"threads": threads, "cpu": host_cpu_line()}
    latency.update({f"{name}_ms": round(float(np.median(values)), 3)
                    for name, values in medians.items()})
    names = list(tflite_models)
    latency["ratio"] = round(latency[f"{names[-1]}_ms"] / latency[f"{names[0]}_ms"], 3)
    return latency


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


def report_path(tflite_path):
    """Returns the path of the report of a ``.tflite`` model: beside it, with its name and the
    ``.json`` suffix (``out/m_int8.tflite`` -> ``out/m_int8.json``)."""
    return Path(tflite_path).with_suffix(".json")


def default_input_size(opts, entry):
    """Returns the image side ``run`` uses without ``input_size``: the size named weights
    (``weights="cifar10"``, ``kerasnets.models.pretrained``) were trained at, else 32 or the
    model's smallest size. Raises ``ValueError`` for named weights the model does not have."""
    from kerasnets.models import pretrained

    if isinstance(opts.weights, str) and opts.weights in pretrained.NAMED_WEIGHTS:
        return pretrained.shipped_weights(opts.model, opts.weights).build["input_shape"][0]
    return max(32, entry.min_size)


def build_model(opts, image_size, num_classes):
    """Returns the Keras model of ``opts.model`` for ``num_classes`` classes at ``image_size``.

    ``opts.weights`` is loaded into the whole model, or with ``opts.new_head`` into the
    ``include_top=False`` part only (checked against the file by layer name and shape), the
    classifier on top keeping its initial weights: a 1000-class ImageNet file then starts a
    model for the data's classes. Raises ``ValueError`` if the file does not fit.
    """
    from kerasnets.models.registry import create_model

    kwargs = dict(opts.model_kwargs, input_shape=(image_size, image_size, 3))
    if not opts.new_head:
        try:
            return create_model(opts.model, classes=num_classes, weights=opts.weights, **kwargs)
        except ValueError as err:
            if opts.weights is None:
                raise
            raise ValueError(f"{err} (a file for another number of classes: --new-head loads "
                             "all but its classifier)") from err
    model = create_model(opts.model, classes=num_classes, **kwargs)
    backbone = create_model(opts.model, include_top=False, weights=opts.weights, **kwargs)
    for layer in backbone.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())
    return model


def run(opts):
    """Returns the report (a dict, also written beside the model: ``report_path``) of the whole
    pipeline.

    Raises ``ValueError`` on bad input (unknown model, missing/empty data folders, class sets
    that differ, bad options, an output folder that cannot be written), before any training.
    """
    from kerasnets import data
    from kerasnets._keras import keras

    entry = _check_options(opts)
    out = check_writable_dir(opts.out)
    image_size = opts.input_size or default_input_size(opts, entry)
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
    model = build_model(opts, image_size, num_classes)
    if len(model.outputs) != 1:
        raise ValueError(
            f"--model {opts.model} has {len(model.outputs)} outputs (one per exit); this "
            "pipeline trains and evaluates single-output classifiers"
        )
    report = {"model": opts.model, "model_kwargs": opts.model_kwargs, "input_size": image_size,
              "classes": num_classes, "class_names": list(train_set.class_names),
              "preprocessing": mode, "precision": opts.precision, "qat": opts.qat,
              "hard_swish": opts.hard_swish, "int8_io": opts.int8_io,
              "weights": str(opts.weights) if opts.weights else None, "new_head": opts.new_head,
              "data": train_set.source, "eval_data": eval_set.source,
              "train_images": len(train_set), "eval_images": len(eval_set),
              "skipped_images": len(set(train_set.skipped) | set(eval_set.skipped)),
              "epochs": opts.epochs, "qat_epochs": opts.qat_epochs if opts.qat else 0}

    if opts.new_head and not opts.epochs and not (opts.qat and opts.qat_epochs):
        log.warning("--new-head without training (--epochs 0): the new classifier is untrained")
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
        from kerasnets.quantization.qat import quantize_model

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
    # The evaluation images as every TFLite model here takes them.
    eval_inputs = data.preprocess(eval_set.images, mode)
    if opts.compare_ptq and opts.qat and opts.precision == "int8":
        log.info("converting the float model to int8 TFLite (post-training quantization)")
        ptq_model = convert(model, "int8", calibration, int8_io=opts.int8_io,
                            hard_swish=opts.hard_swish, progress=opts.progress)
        ptq_outputs = tflite_predict(ptq_model, eval_inputs, progress=opts.progress)
        report["ptq_accuracy"] = accuracy(ptq_outputs, eval_set.labels)
        report["ptq_agreement"] = agreement(ptq_outputs, float_outputs)
        report["ptq_size_bytes"] = len(ptq_model)
    log.info("converting to %s TFLite%s", opts.precision, " (QAT)" if opts.qat else "")
    start = time.perf_counter()
    tflite_model = convert(source, opts.precision, calibration, int8_io=opts.int8_io,
                           hard_swish=opts.hard_swish, progress=opts.progress)
    report["convert_seconds"] = round(time.perf_counter() - start, 1)

    log.info("evaluating the TFLite model")
    tflite_outputs = tflite_predict(tflite_model, eval_inputs, progress=opts.progress)
    report["tflite_accuracy"] = accuracy(tflite_outputs, eval_set.labels)
    # "The Keras model it came from": the QAT model for --qat, the float model otherwise.
    report["agreement"] = agreement(tflite_outputs, source_outputs)
    report["agreement_with_float"] = agreement(tflite_outputs, float_outputs)
    report["size_bytes"] = len(tflite_model)
    report["ops"] = op_histogram(tflite_model)
    report["xnnpack_partitions"] = xnnpack_partitions(tflite_model)
    # Which int8 forms the file holds (hard-swish, exit softmax), as recorded in its metadata:
    # None for float models.
    report["int8_forms"] = written_forms(tflite_model)
    if opts.compare_fp32:
        log.info("converting the float model to fp32 TFLite for comparison")
        fp32_model = tflite_model if opts.precision == "fp32" and not opts.qat else convert(
            model, "fp32", progress=opts.progress)
        fp32_outputs = tflite_predict(fp32_model, eval_inputs, progress=opts.progress)
        report["fp32_size_bytes"] = len(fp32_model)
        report["fp32_tflite_accuracy"] = accuracy(fp32_outputs, eval_set.labels)
        if opts.latency_threads:
            report["latency"] = compare_latency(
                {"fp32": fp32_model, opts.precision: tflite_model}, opts.latency_threads)

    tflite_path = out / tflite_name(opts)
    report["tflite_path"] = str(tflite_path)
    write_atomic(tflite_path, tflite_model)
    try:
        write_atomic(report_path(tflite_path), (json.dumps(report, indent=2) + "\n").encode())
    except BaseException:
        # A model without its report would look like a finished run.
        tflite_path.unlink()
        raise
    log.info("wrote %s (%d bytes) and %s", tflite_path, len(tflite_model),
             report_path(tflite_path))
    return report
