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

Sub-model cuts also quantize the cut layer's output where the whole model may not. So the script
then runs the whole int8 model (kerasnets' form and the plain converter's) with every tensor
kept and, at each int8 tensor holding a QAT layer's output, counts how many int8 steps it is
from the Keras value.

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


def tensor_drift(qat_model, tflite_model, inputs):
    """Returns ``{QAT layer name: (op, mean |difference| in int8 steps, share of values more than
    half a step off, largest difference)}``, in graph order, for the int8 tensors of the whole
    ``tflite_model`` (LiteRT's builtin kernels, every tensor kept) that hold a layer output of
    ``qat_model``: the tensor's name carries the layer's name (the last such layer, for fused
    ops), the shapes match, and the QAT output lies on the tensor's int8 grid (which leaves out
    inner tensors of an op and tensors whose scale a rewrite changed)."""
    import re

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from kerasnets._keras import keras

    interpreter = Interpreter(
        model_content=tflite_model, experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    written = {t: op["op_name"] for op in interpreter._get_ops_details() for t in op["outputs"]}
    tensors = [d for d in interpreter.get_tensor_details()
               if d["index"] in written and d["dtype"] == np.int8]
    layers = qat_model.layers[1:]
    outputs = keras.Model(qat_model.input, [layer.output for layer in layers]).predict(
        inputs, verbose=0)
    values = {d["index"]: [] for d in tensors}
    source = interpreter.get_input_details()[0]["index"]
    for image in inputs:
        interpreter.set_tensor(source, image[None])
        interpreter.invoke()
        for index, kept in values.items():
            kept.append(interpreter.get_tensor(index)[0].copy())
    drift = {}
    for detail in sorted(tensors, key=lambda d: d["index"]):
        named = [i for i, layer in enumerate(layers) if re.search(
            r"(^|[/;])" + re.escape(layer.name) + r"([/;]|$)", detail["name"])]
        if not named:
            continue
        want = outputs[max(named)]
        got = np.stack(values[detail["index"]]).astype(np.float32)
        scale, zero_point = detail["quantization"]
        grid = want / scale + zero_point
        if want.shape != got.shape or np.mean(np.abs(grid - np.round(grid))) > 0.01:
            continue
        steps = np.abs(got - grid)
        drift.setdefault(layers[max(named)].name, (
            written[detail["index"]], float(steps.mean()), float(np.mean(steps > 0.5)),
            float(steps.max())))
    return drift


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
    from kerasnets.export.convert import tflite_converter

    forms = {"kerasnets int8": export.convert(qat_model, "int8", inputs),
             "plain converter int8": tflite_converter(qat_model, "int8", inputs).convert()}
    drifts = {name: tensor_drift(qat_model, model, inputs) for name, model in forms.items()}
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
    lines += ["", "Keras QAT vs the whole int8 model, at each tensor that holds a QAT layer's "
              "output (mean |difference| in int8 steps, share of values more than half a step "
              "off, largest):"]
    names = [n for n in drifts["plain converter int8"] if n in drifts["kerasnets int8"]]
    width = max([len(n) for n in names] + [5])
    lines.append(f"{'layer'.ljust(width)}  {'op':<18}  " + "  ".join(
        f"{form + ': steps, off %, max':>36}" for form in drifts))
    for name in names:
        cells = []
        for form in drifts:
            _, mean, share, largest = drifts[form][name]
            cells.append(f"{mean:>20.3f} {100 * share:>7.1f} {largest:>6.0f}")
        lines.append(f"{name.ljust(width)}  {drifts['plain converter int8'][name][0]:<18}  "
                     + "  ".join(f"{c:>36}" for c in cells))
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
