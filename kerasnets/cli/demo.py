"""``kerasnets demo``, the main job: the whole pipeline on the embedded dataset.

Trains a small MobileNetV3 on the CIFAR-10 subset that ships with kerasnets, fine-tunes it with
quantization-aware training, converts it to a full-integer (int8) TFLite model in the form
LiteRT's XNNPACK delegate runs as one partition, evaluates the float Keras model, the QAT model,
the int8 TFLite model (and an fp32 TFLite conversion for size), writes the ``.tflite`` and
its ``.json`` report (``kerasnets.workflow``) and prints a short table.
"""

import argparse
import logging
import time
from pathlib import Path

from kerasnets import workflow
from kerasnets.cli.common import add_verbose_argument, call_reporting_errors, configure_logging

log = logging.getLogger("kerasnets.cli.demo")

# Chosen by measurement on a 2-core machine (see the README). The 32x32 CIFAR images are
# upsampled to 64x64: MobileNetV3 divides its input by 32, and at 32x32 its last stage sees a
# single position (29 % test accuracy after 20 epochs, against 36 % after 10 epochs at 64x64,
# for less CPU time). Adam at 5e-3 learned faster than 2e-3 on this small set.
DEMO_MODEL = "mobilenet_v3_small"
DEMO_INPUT_SIZE = 64
DEMO_EPOCHS = 15
DEMO_QAT_EPOCHS = 3
DEMO_LEARNING_RATE = 5e-3
DEMO_QAT_LEARNING_RATE = 1e-4


def run_demo(out="out/demo", epochs=DEMO_EPOCHS, qat_epochs=DEMO_QAT_EPOCHS,
             hard_swish="xnnpack", progress=True):
    """Returns the report (dict) of the demo pipeline, after writing its files into ``out``."""
    opts = workflow.Options(
        model=DEMO_MODEL, out=Path(out), precision="int8", qat=True,
        input_size=DEMO_INPUT_SIZE, epochs=epochs, qat_epochs=qat_epochs,
        learning_rate=DEMO_LEARNING_RATE, qat_learning_rate=DEMO_QAT_LEARNING_RATE,
        hard_swish=hard_swish, compare_fp32=True, progress=progress,
    )
    return workflow.run(opts)


def _percent(value):
    return "-" if value is None else f"{100 * value:.1f} %"


def _megabytes(value):
    return "-" if value is None else f"{value / 1e6:.2f} MB"


def format_table(report, seconds=None):
    """Returns the demo's summary table (text) of a ``tflite/convert.py`` report."""
    rows = [
        ("Keras float", _percent(report["float_accuracy"]), "-", "-"),
        ("TFLite fp32", _percent(report.get("fp32_tflite_accuracy")), "-",
         _megabytes(report.get("fp32_size_bytes"))),
        ("Keras QAT", _percent(report["qat_accuracy"]), "-", "-"),
        ("TFLite int8", _percent(report["tflite_accuracy"]), _percent(report["agreement"]),
         _megabytes(report["size_bytes"])),
    ]
    header = ("model", "accuracy", "agrees w/ QAT", "size")
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(4)]
    lines = [
        f"kerasnets demo: {report['model']} {report['input_size']}x{report['input_size']}, "
        f"{report['classes']} classes, {report['train_images']} training / "
        f"{report['eval_images']} test images (embedded CIFAR-10 subset)",
        "  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                  for i, (h, w) in enumerate(zip(header, widths))),
    ]
    for row in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
    ops = ", ".join(f"{name} {count}" for name, count in
                    sorted(report["ops"].items(), key=lambda kv: -kv[1]))
    lines.append(f"int8 ops: {ops}")
    lines.append(f"XNNPACK partitions: {report['xnnpack_partitions']} (1 = the whole graph on "
                 f"XNNPACK); hard-swish form: {report['hard_swish']}")
    times = (f"train {report['train_seconds']:.0f} s, QAT {report.get('qat_seconds', 0):.0f} s, "
             f"int8 conversion {report['convert_seconds']:.0f} s")
    if seconds is not None:
        times += f", total {seconds / 60:.1f} min"
    lines.append(times)
    lines.append(f"wrote {report['tflite_path']} and "
                 f"{workflow.report_path(report['tflite_path'])}")
    return "\n".join(lines)


def build_parser(prog="kerasnets demo"):
    """Returns the ``argparse`` parser of ``kerasnets demo``."""
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 on success, 2 on bad input, 1 on other errors.")
    parser.add_argument("--out", default="out/demo",
                        help="folder for the .tflite and its .json report (default: "
                             "%(default)s)")
    parser.add_argument("--hard-swish", choices=("xnnpack", "fused"), default="xnnpack",
                        help="int8 form of hard-swish (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_verbose_argument(parser)
    return parser


def main(argv=None, prog="kerasnets demo"):
    """Returns the exit status of ``kerasnets demo`` after printing the table."""
    args = build_parser(prog).parse_args(argv)
    configure_logging(verbose=args.verbose)
    start = time.perf_counter()
    status, report = call_reporting_errors(log, run_demo, args.out, hard_swish=args.hard_swish,
                                           progress=not args.no_progress,
                                           errors=(OSError, RuntimeError))
    if status == 0:
        print(format_table(report, time.perf_counter() - start))
    return status
