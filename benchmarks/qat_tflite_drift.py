"""Where a QAT Keras model and its TFLite models part ways, layer by layer.

Issue 5 asks the int8 model to agree with the QAT Keras model it came from on >= 99 % of real
images. This script shows what the disagreement is made of. It trains a small model briefly (or loads
trained weights, ``--weights``), fine-tunes it with ``kerasnets.quantization.qat.quantize_model``, and compares the QAT Keras model with

- its int8 TFLite model (what ships), and
- its fp32 TFLite model: the converter keeps the QAT graph's fake-quant points as
  QUANTIZE/DEQUANTIZE pairs, so this is TFLite *simulating* the same quantized network in float,
  with no int8 kernels and none of kerasnets' int8 rewrites involved.

Then, for sub-models cut after evenly spaced layers, the Keras QAT output against the fp32
and the int8 TFLite outputs of the same sub-model: the relative RMS difference and the share of
values that differ at all. A converter or rewrite bug shows as a jump at one layer; rounding at the
fake-quant points (a value that lands near a rounding boundary in one runtime and just across
it in the other moves one int8 step, and moves what follows) shows as a share that grows slowly
with depth.

    python benchmarks/qat_tflite_drift.py                          # embedded CIFAR-10 subset
    python benchmarks/qat_tflite_drift.py --model mobilenet_v2 --input-size 32
"""

import argparse
import logging
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("qat_tflite_drift")


def drift_table(model, inputs, points):
    """Returns rows ``(index, layer name, layer type, {precision: (relative RMS, share
    differing)})`` comparing the Keras outputs of sub-models of ``model`` cut after ``points``
    layers with their fp32 TFLite and int8 TFLite outputs (the int8 model dequantizes the cut
    layer's output: its int8 values, at the scale the QAT model learned there)."""
    from kerasnets._keras import keras
    from kerasnets import export

    last = len(model.layers) - 1
    cuts = sorted(set(np.linspace(1, last, points).round().astype(int).tolist()))
    rows = []
    for index in cuts:
        layer = model.layers[index]
        sub = keras.Model(model.input, layer.output)
        want = sub(inputs, training=False).numpy()
        scale = max(np.abs(want).max(), 1e-12)
        measured = {}
        for precision in ("fp32", "int8"):
            got = export.tflite_predict(export.convert(sub, precision, inputs), inputs)
            diff = got - want
            measured[precision] = (
                float(np.sqrt(np.mean(diff ** 2) / max(np.mean(want ** 2), 1e-24))),
                float(np.mean(np.abs(diff) > 1e-6 * scale)))
        inner = getattr(layer, "layer", layer)  # the layer a QuantizeWrapper wraps
        rows.append((index, layer.name, type(inner).__name__, measured))
        log.info("layer %d/%d %s: relative RMS fp32 %.4f, int8 %.4f", index, last, layer.name,
                 measured["fp32"][0], measured["int8"][0])
    return rows


def run(args):
    """Returns the printed report (text) of one run of the script."""
    from kerasnets import data
    from kerasnets._keras import keras
    from kerasnets.quantization.qat import quantize_model
    from kerasnets.models.registry import create_model, get_entry
    from kerasnets import export, workflow

    entry = get_entry(args.model)
    mode = data.preprocessing_mode(entry)
    train_source = data.embedded_dataset("train") if args.data is None else args.data / "train"
    test_source = data.embedded_dataset("test") if args.data is None else args.data / "test"
    train_set = data.load_image_folder(train_source, args.input_size, args.train_per_class)
    test_set = data.load_image_folder(test_source, args.input_size, args.test_per_class)
    data.check_same_classes(train_set, test_set, ("train/", "test/"))

    keras.utils.set_random_seed(args.seed)
    model = create_model(args.model, input_shape=(args.input_size,) * 2 + (3,),
                         classes=len(train_set.class_names), weights=args.weights)
    epochs = 0 if args.weights else args.epochs
    if epochs:
        log.info("float training, %d epochs", epochs)
        workflow.train(model, train_set, mode, epochs, 2e-3, seed=args.seed)
    qat_model = quantize_model(model)
    log.info("QAT fine-tuning, %d epochs", args.qat_epochs)
    workflow.train(qat_model, train_set, mode, args.qat_epochs, args.qat_learning_rate,
                   seed=args.seed)

    inputs = data.preprocess(test_set.images, mode)
    keras_outputs = qat_model.predict(inputs, verbose=0)
    agreements = {}
    for precision in ("int8", "fp32"):
        tflite_model = export.convert(qat_model, precision, inputs)
        agreements[precision] = export.agreement(
            export.tflite_predict(tflite_model, inputs), keras_outputs)
    rows = drift_table(qat_model, inputs, args.points)

    start = f"weights {args.weights}" if args.weights else f"{epochs} epochs"
    lines = [
        f"{args.model} at {args.input_size}x{args.input_size}, {len(train_set)} training images, "
        f"{start} + {args.qat_epochs} QAT epochs; {len(test_set)} test images "
        f"(QAT Keras accuracy {100 * export.accuracy(keras_outputs, test_set.labels):.1f} %)",
        f"top-1 agreement with the QAT Keras model: int8 TFLite "
        f"{100 * agreements['int8']:.1f} %, fp32 TFLite of the same QAT graph "
        f"{100 * agreements['fp32']:.1f} %",
        "",
        "Keras QAT vs TFLite, sub-model cut after layer (relative RMS difference, share of "
        "values that differ):",
    ]
    width = max(len(name) for _, name, _, _ in rows)
    lines.append(f"{'layer':>5}  {'name'.ljust(width)}  {'type':<22}  {'fp32 RMS':>8}  "
                 f"{'differ %':>8}  {'int8 RMS':>8}  {'differ %':>8}")
    for index, name, kind, measured in rows:
        (fp32_rms, fp32_share), (int8_rms, int8_share) = measured["fp32"], measured["int8"]
        lines.append(f"{index:>5}  {name.ljust(width)}  {kind:<22}  {fp32_rms:8.4f}  "
                     f"{100 * fp32_share:8.1f}  {int8_rms:8.4f}  {100 * int8_share:8.1f}")
    return "\n".join(lines)


def build_parser():
    """Returns the command line's argument parser."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mobilenet_v3_small",
                        help="registered model name (default: %(default)s)")
    parser.add_argument("--input-size", type=int, default=64,
                        help="input rows and columns (default: %(default)s)")
    parser.add_argument("--data", type=Path,
                        help="folder with train/ and test/ image folders (default: the embedded "
                             "CIFAR-10 subset)")
    parser.add_argument("--train-per-class", type=int, default=200,
                        help="training images per class (default: %(default)s)")
    parser.add_argument("--test-per-class", type=int, default=4,
                        help="test images per class (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=4,
                        help="float training epochs (default: %(default)s)")
    parser.add_argument("--weights", help="start from these float weights (.h5) instead of "
                        "float training, e.g. kerasnets/data/weights/mobilenet_v3_small_cifar10.h5")
    parser.add_argument("--qat-epochs", type=int, default=1,
                        help="QAT fine-tuning epochs (default: %(default)s)")
    parser.add_argument("--qat-learning-rate", type=float, default=2e-4,
                        help="peak QAT learning rate (default: %(default)s)")
    parser.add_argument("--points", type=int, default=25,
                        help="how many layers to cut after (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    return parser


def main(argv=None):
    """Returns the exit status of the script (0 success, 2 bad input, 1 unreadable files)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("input_size", "train_per_class", "test_per_class", "epochs", "qat_epochs",
                 "points"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1; received "
                         f"{getattr(args, name)}")
    from kerasnets.cli.common import call_reporting_errors, configure_logging

    configure_logging()
    status, report = call_reporting_errors(log, run, args)
    if report is not None:
        print(report)
    return status


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
