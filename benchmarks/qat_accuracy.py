"""Float vs post-training int8 vs QAT int8 accuracy on real CIFAR-10, side by side.

For each model: train the float Keras model on ``<data>/train``, evaluate it on ``<data>/test``;
convert it to full-integer int8 TFLite with post-training quantization (PTQ, calibrated on
training images); fine-tune a QAT copy (``kerasnets.quantization.qat.quantize_model``) and convert it to
int8 TFLite; evaluate both TFLite models with LiteRT. The target: QAT int8 within 1.0 point of
the float model.

    python benchmarks/qat_accuracy.py                      # ../shared/data/cifar10, 3 models
    python benchmarks/qat_accuracy.py --models mobilenet_v2@32 --epochs 5 --train-per-class 300
    python benchmarks/qat_accuracy.py --show out/qat_accuracy.json   # table of saved rows

``NAME@SIZE`` trains at ``SIZE`` x ``SIZE`` (CIFAR images resized): MobileNetV3 divides its input
by 32, so at 32x32 its last stage sees one position; 64x64 gives it 2x2.

Training is short (a shared 2-core CPU), so absolute accuracies are far below the papers'; the
comparison that matters is each int8 model against the float model it came from. With a float
model that is still learning, the QAT epochs also train it further: "QAT-float" then mixes that
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
# Test images whose QAT Keras top-1 probability leads the second by at least this much count as
# clearly decided; the int8 model's agreement is also reported on them alone.
CLEAR_MARGIN = 0.1

log = logging.getLogger("qat_accuracy")


def benchmark_model(name, train_set, test_set, epochs, qat_epochs, calibration_images=200,
                    learning_rate=2e-3, qat_learning_rate=2e-4, seed=0):
    """Returns the result row (dict) of one model: float, PTQ int8 and QAT int8 accuracies."""
    from kerasnets import data
    from kerasnets._keras import keras
    from kerasnets.quantization.qat import quantize_model
    from kerasnets.models.registry import create_model, get_entry
    from kerasnets import export, workflow

    entry = get_entry(name)
    mode = data.preprocessing_mode(entry)
    size = train_set.images.shape[1]
    keras.utils.set_random_seed(seed)
    model = create_model(name, input_shape=(size, size, 3), classes=len(train_set.class_names))
    row = {"model": name, "input_size": size, "epochs": epochs, "qat_epochs": qat_epochs,
           "train_images": len(train_set), "test_images": len(test_set)}

    start = time.perf_counter()
    log.info("%s: float training, %d epochs", name, epochs)
    workflow.train(model, train_set, mode, epochs, learning_rate, seed=seed)
    row["train_seconds"] = round(time.perf_counter() - start)
    float_outputs = workflow.keras_predict(model, test_set, mode)
    row["float"] = export.accuracy(float_outputs, test_set.labels)
    test_inputs = data.preprocess(test_set.images, mode)

    calibration = data.preprocess(
        workflow.pick_calibration_images(train_set, calibration_images, seed), mode)
    log.info("%s: post-training int8", name)
    ptq = export.convert(model, "int8", calibration)
    ptq_outputs = export.tflite_predict(ptq, test_inputs, progress=True)
    row["ptq_int8"] = export.accuracy(ptq_outputs, test_set.labels)
    row["ptq_agreement"] = export.agreement(ptq_outputs, float_outputs)

    start = time.perf_counter()
    log.info("%s: QAT fine-tuning, %d epochs", name, qat_epochs)
    qat_model = quantize_model(model)
    workflow.train(qat_model, train_set, mode, qat_epochs, qat_learning_rate, seed=seed)
    row["qat_seconds"] = round(time.perf_counter() - start)
    qat_keras_outputs = workflow.keras_predict(qat_model, test_set, mode)
    row["qat_keras"] = export.accuracy(qat_keras_outputs, test_set.labels)
    qat = export.convert(qat_model, "int8", calibration)
    qat_outputs = export.tflite_predict(qat, test_inputs, progress=True)
    row["qat_int8"] = export.accuracy(qat_outputs, test_set.labels)
    row["qat_agreement"] = export.agreement(qat_outputs, float_outputs)
    row["qat_keras_agreement"] = export.agreement(qat_outputs, qat_keras_outputs)
    # Where do they disagree? On images the QAT model itself hardly decides between two classes:
    top2 = np.sort(qat_keras_outputs, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] >= CLEAR_MARGIN
    row["clear_fraction"] = float(np.mean(clear))
    row["qat_keras_agreement_clear"] = export.agreement(qat_outputs[clear],
                                                           qat_keras_outputs[clear])
    row["int8_bytes"] = len(qat)
    row["xnnpack_partitions"] = export.xnnpack_partitions(qat)
    return row


def parse_model(spec):
    """Returns ``(name, size)`` of a ``NAME@SIZE`` model spec; raises ``ValueError`` if bad."""
    from kerasnets.models.registry import get_entry

    name, _, size = spec.partition("@")
    entry = get_entry(name)
    if not size.isdigit() or int(size) < entry.min_size:
        raise ValueError(f"model spec {spec!r} must be NAME@SIZE with SIZE >= {entry.min_size}")
    return name, int(size)


def format_table(rows):
    """Returns the side-by-side table (text) of ``benchmark_model`` rows."""
    header = ("model", "size", "float %", "PTQ int8 %", "PTQ-float", "QAT Keras %",
              "QAT int8 %", "QAT-float", "int8 agrees w/ float %", "QAT int8 agrees w/ QAT Keras %",
              f"same, margin >= {CLEAR_MARGIN} (share)", "target", "epochs+QAT",
              "train s")
    body = []
    for r in rows:
        qat_delta = 100 * (r["qat_int8"] - r["float"])
        body.append((r["model"], r["input_size"], f"{100 * r['float']:.1f}",
                     f"{100 * r['ptq_int8']:.1f}", f"{100 * (r['ptq_int8'] - r['float']):+.1f}",
                     f"{100 * r['qat_keras']:.1f}", f"{100 * r['qat_int8']:.1f}",
                     f"{qat_delta:+.1f}",
                     f"PTQ {100 * r['ptq_agreement']:.1f}, QAT {100 * r['qat_agreement']:.1f}",
                     f"{100 * r['qat_keras_agreement']:.1f}" if "qat_keras_agreement" in r else "-",
                     (f"{100 * r['qat_keras_agreement_clear']:.1f} "
                      f"({100 * r['clear_fraction']:.0f} %)") if "clear_fraction" in r else "-",
                     "met" if qat_delta >= -1.0 else "MISSED",
                     f"{r['epochs']}+{r['qat_epochs']}",
                     f"{r['train_seconds']}+{r['qat_seconds']}"))
    widths = [max(len(str(x[i])) for x in [header] + body) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths))) for row in [header] + body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None):
    """Returns the exit status of the benchmark (0 success, 2 bad input)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with train/ and test/ image folders (default: %(default)s)")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                        help="registered model names with the input size, NAME@SIZE "
                             "(default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=10,
                        help="float training epochs (default: %(default)s)")
    parser.add_argument("--qat-epochs", type=int, default=2,
                        help="QAT fine-tuning epochs (default: %(default)s)")
    parser.add_argument("--train-per-class", type=int,
                        help="use only the first N training images of each class")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "qat_accuracy.json",
                        help="JSON file for the rows (default: %(default)s)")
    parser.add_argument("--show", type=Path, nargs="+", metavar="JSON",
                        help="only print the table of rows saved by earlier runs")
    args = parser.parse_args(argv)
    if args.show:
        print(format_table([row for path in args.show for row in json.loads(path.read_text())]))
        return 0
    from kerasnets import data
    from kerasnets.cli.common import configure_logging

    configure_logging()

    try:
        specs = [parse_model(spec) for spec in args.models]
        sets = {}
        for size in sorted({size for _, size in specs}):
            sets[size] = (
                data.load_image_folder(args.data / "train", size, per_class=args.train_per_class),
                data.load_image_folder(args.data / "test", size))
            data.check_same_classes(*sets[size], ("train/", "test/"))
    except ValueError as err:
        log.error("%s", err)
        return 2
    rows = []
    for name, size in specs:
        train_set, test_set = sets[size]
        rows.append(benchmark_model(name, train_set, test_set, args.epochs, args.qat_epochs))
        log.info("%s done:\n%s", name, format_table(rows[-1:]))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    train_set, test_set = next(iter(sets.values()))
    print(f"\nCIFAR-10 ({args.data}): {len(train_set)} training / {len(test_set)} test images")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
