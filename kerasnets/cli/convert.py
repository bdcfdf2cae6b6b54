"""``kerasnets convert``: convert a kerasnets model to TensorFlow Lite and evaluate it; train it
first only when asked (``--epochs``, ``--qat``) (``kerasnets.workflow``).

    kerasnets convert --model mobilenet_v2 --weights W.h5 --precision int8 --data calib/
    kerasnets convert --model mobilenet_v2 --weights imagenet.h5 --new-head --data cats_dogs/ \
        --epochs 5 --precision int8 --qat --out out/cats_dogs

Prints a JSON summary on stdout; writes ``<model>_<precision>[_qat].tflite`` and its report
``<model>_<precision>[_qat].json`` into ``--out``.
"""

import argparse
import json
import logging
from pathlib import Path

from kerasnets.cli.common import add_verbose_argument, call_reporting_errors, configure_logging
from kerasnets.export.convert import PRECISIONS
from kerasnets.workflow import Options, report_path, run

log = logging.getLogger("kerasnets.convert")


def build_parser(prog="kerasnets convert"):
    """Returns the ``argparse`` parser of the command line."""
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0],
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
    parser.add_argument("--new-head", action="store_true",
                        help="load --weights into all but the classifier, which starts anew "
                             "for the classes of the data (transfer learning, e.g. from a "
                             "1000-class ImageNet file; train it with --epochs)")
    parser.add_argument("--precision", choices=PRECISIONS, default="int8",
                        help="TFLite precision (default: %(default)s)")
    parser.add_argument("--qat", action="store_true", help="quantization-aware fine-tuning "
                        "(--qat-epochs) before full-integer conversion (needs --precision int8)")
    parser.add_argument("--epochs", type=int, default=Options.epochs,
                        help="float training epochs (default: %(default)s, convert the model "
                             "as loaded)")
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
                        help="output folder for the .tflite and its .json report "
                             "(default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_verbose_argument(parser)
    return parser


def main(argv=None, prog="kerasnets convert"):
    """Returns the exit status of the command line (0 success, 2 bad input, 1 other errors)."""
    args = build_parser(prog).parse_args(argv)
    configure_logging(verbose=args.verbose)
    opts = Options(
        model=args.model, out=args.out, precision=args.precision, qat=args.qat,
        input_size=args.input_size, classes=args.classes, weights=args.weights,
        new_head=args.new_head,
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
    summary = {k: report[k] for k in (
        "model", "precision", "qat", "tflite_path", "size_bytes", "float_accuracy",
        "qat_accuracy", "tflite_accuracy", "agreement", "xnnpack_partitions",
        "convert_seconds")}
    summary["report_path"] = str(report_path(report["tflite_path"]))
    print(json.dumps(summary, indent=2))
    return 0
