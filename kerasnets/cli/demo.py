"""``kerasnets demo``, the main job: the whole pipeline on the embedded dataset, from the trained
MobileNetV3-Small CIFAR-10 weights that ship with kerasnets.

Loads ``create_model("mobilenet_v3_small", weights="cifar10")`` (trained on the 50,000 CIFAR-10
training images, ``kerasnets/data/README.md``), converts it to int8 TFLite with post-training
quantization (PTQ), fine-tunes it briefly with quantization-aware training (QAT) on the embedded
training subset and converts that to int8 in the form LiteRT's XNNPACK delegate runs as one
partition; evaluates the float Keras model, the fp32 TFLite conversion, the PTQ int8 model, the
QAT Keras model and the QAT int8 model on the embedded test images; times fp32 against int8 on
this CPU; writes the ``.tflite`` and its ``.json`` report (``kerasnets.workflow``) and prints a
short table.
"""

import argparse
import logging
import time
from pathlib import Path

from kerasnets import workflow
from kerasnets.cli.common import add_verbose_argument, call_reporting_errors, configure_logging

log = logging.getLogger("kerasnets.cli.demo")

DEMO_MODEL = "mobilenet_v3_small"
DEMO_WEIGHTS = "cifar10"
# QAT from converged weights: one short epoch over the 2,000 embedded training images at a small
# rate, the usual QAT fine-tune (tfmot's guide fine-tunes for a fraction of the original training).
DEMO_QAT_EPOCHS = 1
DEMO_QAT_LEARNING_RATE = 1e-5
DEMO_LATENCY_THREADS = 2


def run_demo(out="out/demo", qat_epochs=DEMO_QAT_EPOCHS, hard_swish="xnnpack", progress=True):
    """Returns the report (dict) of the demo pipeline, after writing its files into ``out``."""
    from kerasnets.models import pretrained

    shipped = pretrained.shipped_weights(DEMO_MODEL, DEMO_WEIGHTS)
    opts = workflow.Options(
        model=DEMO_MODEL, out=Path(out), precision="int8", qat=True, weights=DEMO_WEIGHTS,
        input_size=shipped.build["input_shape"][0], epochs=0, qat_epochs=qat_epochs,
        qat_learning_rate=DEMO_QAT_LEARNING_RATE, hard_swish=hard_swish, compare_fp32=True,
        compare_ptq=True, latency_threads=DEMO_LATENCY_THREADS, progress=progress,
    )
    return workflow.run(opts)


def _percent(value):
    return "-" if value is None else f"{100 * value:.1f} %"


def _megabytes(value):
    return "-" if value is None else f"{value / 1e6:.2f} MB"


def format_table(report, seconds=None):
    """Returns the demo's summary table (text) of a ``kerasnets.workflow`` report."""
    rows = [
        ("Keras float", _percent(report["float_accuracy"]), "-", "-"),
        ("TFLite fp32", _percent(report.get("fp32_tflite_accuracy")), "-",
         _megabytes(report.get("fp32_size_bytes"))),
    ]
    if "ptq_accuracy" in report:
        rows.append(("TFLite int8 PTQ", _percent(report["ptq_accuracy"]),
                     f"{_percent(report['ptq_agreement'])} (float)",
                     _megabytes(report["ptq_size_bytes"])))
    rows += [
        ("Keras QAT", _percent(report["qat_accuracy"]), "-", "-"),
        ("TFLite int8 QAT" if report["qat"] else "TFLite int8", _percent(report["tflite_accuracy"]),
         f"{_percent(report['agreement'])} ({'QAT' if report['qat'] else 'float'})",
         _megabytes(report["size_bytes"])),
    ]
    header = ("model", "accuracy", "agrees with", "size")
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(4)]
    start = (f"weights {report['weights']!r}" if report.get("weights") and not report["epochs"]
             else f"{report['train_images']} training images")
    lines = [
        f"kerasnets demo: {report['model']} {report['input_size']}x{report['input_size']}, "
        f"{report['classes']} classes, {start}; {report['eval_images']} test images "
        "(embedded CIFAR-10 subset)",
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
    latency = report.get("latency")
    if latency:
        lines.append(f"latency ({latency['threads']} threads, XNNPACK, median): fp32 "
                     f"{latency['fp32_ms']:.2f} ms, int8 {latency['int8_ms']:.2f} ms "
                     f"(int8/fp32 {latency['ratio']:.2f}), measured on this")
        lines.append(f"  {latency['cpu']}")
    times = (f"train {report['train_seconds']:.0f} s, " if report["epochs"] else "") + (
        f"QAT {report.get('qat_seconds', 0):.0f} s, int8 conversion "
        f"{report['convert_seconds']:.0f} s")
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
