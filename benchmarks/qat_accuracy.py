"""Float vs post-training int8 vs QAT int8 accuracy on real CIFAR-10, side by side.

For each model: train the float Keras model on the training images (or load converged weights,
``NAME@SIZE=WEIGHTS.h5``), evaluate it on ``<data>/test``; convert it to fp32 TFLite and to
full-integer int8 TFLite with post-training quantization (PTQ, calibrated on training images);
fine-tune a QAT copy (``kerasnets.quantization.qat.quantize_model``) and convert it to int8
TFLite in the default single-partition form and in the fused-hard-swish form; evaluate every
TFLite model with LiteRT. Each int8 model is compared with the Keras model it came from (PTQ
with the float model, QAT int8 with the QAT Keras model): top-1 agreement on all test images,
and on the images that Keras model decides clearly (top-1 probability ahead of the second by at
least ``CLEAR_MARGIN``). Targets (issue 15): QAT int8 within 0.5 point of the float model; int8
agrees with its QAT Keras model on >= 99 % of the test images.

    python benchmarks/qat_accuracy.py                      # ../shared/data/cifar10, 3 models
    python benchmarks/qat_accuracy.py --models mobilenet_v2@32 --epochs 5 --train-per-class 300
    python benchmarks/qat_accuracy.py --models \
        mobilenet_v3_small@64=kerasnets/data/weights/mobilenet_v3_small_cifar10.h5 \
        --train ../shared/data/cifar10/train50k.zip --qat-epochs 1
    python benchmarks/qat_accuracy.py --show out/qat_accuracy.json   # table of saved rows

``NAME@SIZE`` trains at ``SIZE`` x ``SIZE`` (CIFAR images resized): MobileNetV3 divides its input
by 32, so at 32x32 its last stage sees one position; 64x64 gives it 2x2. With a float model that
is still learning, the QAT epochs also train it further: "QAT int8 vs float" then mixes that
gain with the quantization loss, which "QAT int8" against "QAT Keras" (its fake-quant
simulation) isolates.
"""

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "cifar10"
DEFAULT_MODELS = ("mobilenet_v2@32", "mobilenet_v3_small@64", "densenet_40_k12@32")
# Test images whose Keras top-1 probability leads the second by at least this much count as
# clearly decided; each int8 model's agreement is also reported on them alone.
CLEAR_MARGIN = 0.1
# The rows of a model's table: (label, accuracy key, source label, agreement key prefix).
VARIANTS = (
    ("Keras float", "float", None, None),
    ("TFLite fp32", "fp32_tflite", "float", "fp32"),
    ("PTQ int8", "ptq_int8", "float", "ptq"),
    ("QAT Keras", "qat_keras", None, None),
    ("QAT int8 (single partition)", "qat_int8", "QAT Keras", "qat_keras"),
    ("QAT int8 (fused hard-swish)", "qat_int8_fused", "QAT Keras", "qat_fused"),
)

log = logging.getLogger("qat_accuracy")


def agreement_fields(prefix, outputs, source_outputs):
    """Returns ``{prefix_agreement, prefix_agreement_clear, prefix_clear_fraction}`` of a TFLite
    model's ``outputs`` against the Keras model's ``source_outputs`` (probabilities)."""
    from kerasnets import export

    top2 = np.sort(source_outputs, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] >= CLEAR_MARGIN
    return {f"{prefix}_agreement": export.agreement(outputs, source_outputs),
            f"{prefix}_agreement_clear": export.agreement(outputs[clear], source_outputs[clear]),
            f"{prefix}_clear_fraction": float(np.mean(clear))}


def benchmark_model(name, train_set, test_set, epochs, qat_epochs, calibration_images=200,
                    learning_rate=2e-3, qat_learning_rate=2e-4, seed=0, weights=None):
    """Returns the result row (dict) of one model: float, fp32 TFLite, PTQ int8 and QAT int8
    (both hard-swish forms) accuracies and agreements. ``weights``: an ``.h5`` file the float
    model starts from."""
    from kerasnets import data
    from kerasnets._keras import keras
    from kerasnets.quantization.qat import quantize_model
    from kerasnets.models.registry import create_model, get_entry
    from kerasnets import export, workflow

    entry = get_entry(name)
    mode = data.preprocessing_mode(entry)
    size = train_set.images.shape[1]
    keras.utils.set_random_seed(seed)
    model = create_model(name, input_shape=(size, size, 3), classes=len(train_set.class_names),
                         weights=weights)
    row = {"model": name, "input_size": size, "epochs": epochs, "qat_epochs": qat_epochs,
           "weights": str(weights) if weights else None, "qat_learning_rate": qat_learning_rate,
           "train_images": len(train_set), "test_images": len(test_set)}

    start = time.perf_counter()
    if epochs:
        log.info("%s: float training, %d epochs", name, epochs)
        workflow.train(model, train_set, mode, epochs, learning_rate, seed=seed)
    row["train_seconds"] = round(time.perf_counter() - start)
    float_outputs = workflow.keras_predict(model, test_set, mode)
    row["float"] = export.accuracy(float_outputs, test_set.labels)
    test_inputs = data.preprocess(test_set.images, mode)

    fp32_outputs = export.tflite_predict(export.convert(model, "fp32"), test_inputs)
    row["fp32_tflite"] = export.accuracy(fp32_outputs, test_set.labels)
    row.update(agreement_fields("fp32", fp32_outputs, float_outputs))

    calibration = data.preprocess(
        workflow.pick_calibration_images(train_set, calibration_images, seed), mode)
    log.info("%s: post-training int8", name)
    ptq = export.convert(model, "int8", calibration)
    ptq_outputs = export.tflite_predict(ptq, test_inputs, progress=True)
    row["ptq_int8"] = export.accuracy(ptq_outputs, test_set.labels)
    row.update(agreement_fields("ptq", ptq_outputs, float_outputs))

    start = time.perf_counter()
    log.info("%s: QAT fine-tuning, %d epochs", name, qat_epochs)
    qat_model = quantize_model(model)
    if qat_epochs:
        workflow.train(qat_model, train_set, mode, qat_epochs, qat_learning_rate, seed=seed)
    row["qat_seconds"] = round(time.perf_counter() - start)
    qat_keras_outputs = workflow.keras_predict(qat_model, test_set, mode)
    row["qat_keras"] = export.accuracy(qat_keras_outputs, test_set.labels)
    for form, key, prefix in (("xnnpack", "qat_int8", "qat_keras"),
                              ("fused", "qat_int8_fused", "qat_fused")):
        qat = export.convert(qat_model, "int8", calibration, hard_swish=form)
        qat_outputs = export.tflite_predict(qat, test_inputs, progress=True)
        row[key] = export.accuracy(qat_outputs, test_set.labels)
        row.update(agreement_fields(prefix, qat_outputs, qat_keras_outputs))
        if form == "xnnpack":
            row["qat_agreement"] = export.agreement(qat_outputs, float_outputs)
            row["int8_bytes"] = len(qat)
            row["xnnpack_partitions"] = export.xnnpack_partitions(qat)
    return row


def parse_model(spec):
    """Returns ``(name, size, weights or None)`` of a ``NAME@SIZE[=WEIGHTS.h5]`` model spec;
    raises ``ValueError`` if bad."""
    from kerasnets.models.registry import get_entry

    spec, _, weights = spec.partition("=")
    name, _, size = spec.partition("@")
    entry = get_entry(name)
    if not size.isdigit() or int(size) < entry.min_size:
        raise ValueError(f"model spec {spec!r} must be NAME@SIZE[=WEIGHTS.h5] with SIZE >= "
                         f"{entry.min_size}")
    if weights and not Path(weights).is_file():
        raise ValueError(f"model spec {spec}={weights}: weights file {weights!r} does not exist")
    return name, int(size), weights or None


def format_table(rows):
    """Returns the Markdown table (text) of ``benchmark_model`` rows: one line per model and
    variant (``VARIANTS``); fields an older row lacks print as "-"."""
    def pct(value):
        return "-" if value is None else f"{100 * value:.1f}"

    lines = [f"| model | variant | top-1 % | vs float (points) | agrees with | agreement % | "
             f"same, margin >= {CLEAR_MARGIN} (share of images) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        for label, key, source, prefix in VARIANTS:
            value = r.get(key)
            delta = "-" if value is None else f"{100 * (value - r['float']):+.1f}"
            agree = r.get(f"{prefix}_agreement") if prefix else None
            clear = r.get(f"{prefix}_agreement_clear") if prefix else None
            share = r.get(f"{prefix}_clear_fraction") if prefix else None
            lines.append(
                f"| {r['model']}@{r['input_size']} | {label} | {pct(value)} | {delta} | "
                f"{source or '-'} | {pct(agree)} | "
                f"{'-' if clear is None else f'{pct(clear)} ({pct(share)} %)'} |")
    return "\n".join(lines)


def format_summary(rows):
    """Returns one line per row: the targets, met or not, and the run's sizes and times."""
    lines = []
    for r in rows:
        delta = 100 * (r["qat_int8"] - r["float"])
        agree = r.get("qat_keras_agreement")
        lines.append(
            f"{r['model']}@{r['input_size']}: QAT int8 {delta:+.1f} points vs float (target >= "
            f"-0.5: {'met' if delta >= -0.5 else 'MISSED'}); int8 agrees with QAT Keras "
            + ("-" if agree is None else
               f"{100 * agree:.1f} % (target >= 99: {'met' if agree >= 0.99 else 'MISSED'})")
            + f"; {r['train_images']} training / {r['test_images']} test images, "
            f"{'weights ' + r['weights'] if r.get('weights') else str(r['epochs']) + ' epochs'} "
            f"+ {r['qat_epochs']} QAT epochs; {r['train_seconds']} + {r['qat_seconds']} s")
    return "\n".join(lines)


def main(argv=None):
    """Returns the exit status of the benchmark (0 success, 2 bad input)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with train/ and test/ image folders (default: %(default)s)")
    parser.add_argument("--train", help="training images instead of <data>/train: an image "
                        "folder or ARCHIVE.zip[:FOLDER], e.g. train50k.zip")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                        help="registered model names with the input size, NAME@SIZE, and "
                             "optionally =WEIGHTS.h5 to start from trained weights without "
                             "float training (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=10,
                        help="float training epochs of models without weights (default: "
                             "%(default)s)")
    parser.add_argument("--qat-epochs", type=int, default=2,
                        help="QAT fine-tuning epochs (default: %(default)s)")
    parser.add_argument("--qat-learning-rate", type=float, default=2e-4,
                        help="peak QAT learning rate (Adam, cosine; default: %(default)s)")
    parser.add_argument("--train-per-class", type=int,
                        help="use only the first N training images of each class")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "qat_accuracy.json",
                        help="JSON file for the rows (default: %(default)s)")
    parser.add_argument("--show", type=Path, nargs="+", metavar="JSON",
                        help="only print the table of rows saved by earlier runs")
    args = parser.parse_args(argv)
    if args.show:
        rows = [row for path in args.show for row in json.loads(path.read_text())]
        print(format_table(rows))
        print(format_summary(rows))
        return 0
    from kerasnets import data
    from kerasnets.bench.local import host_cpu_line
    from kerasnets.cli.common import configure_logging

    configure_logging()

    train_source = args.train or args.data / "train"
    try:
        specs = [parse_model(spec) for spec in args.models]
        sets = {}
        for size in sorted({size for _, size, _ in specs}):
            sets[size] = (
                data.load_image_folder(train_source, size, per_class=args.train_per_class),
                data.load_image_folder(args.data / "test", size))
            data.check_same_classes(*sets[size], ("train/", "test/"))
    except ValueError as err:
        log.error("%s", err)
        return 2
    rows = []
    for name, size, weights in specs:
        train_set, test_set = sets[size]
        rows.append(benchmark_model(name, train_set, test_set, 0 if weights else args.epochs,
                                    args.qat_epochs, qat_learning_rate=args.qat_learning_rate,
                                    weights=weights))
        log.info("%s done:\n%s", name, format_table(rows[-1:]))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    train_set, test_set = next(iter(sets.values()))
    print(f"\nCIFAR-10: {len(train_set)} training images ({train_source}), {len(test_set)} "
          f"test images ({args.data / 'test'})\n{host_cpu_line()}\n")
    print(format_table(rows))
    print()
    print(format_summary(rows))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
