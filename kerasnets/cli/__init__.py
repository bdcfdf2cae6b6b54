"""The ``kerasnets`` command (also ``python -m kerasnets``): one entry point, one sub-command
per stage of the pipeline.

    kerasnets demo                      the whole pipeline on the embedded CIFAR-10 subset
    kerasnets train --model NAME ...    train a registered model (checkpoints, resume)
    kerasnets convert --model NAME ...  convert to TFLite (optionally train / QAT) and evaluate
    kerasnets predict MODEL.tflite IMG  top-k classes of images, from the model's report
    kerasnets bench MODEL.tflite ...    latency on Android devices over adb, or on this host
    kerasnets report RECORDS.jsonl ...  tables and plots of benchmark records
    kerasnets profile NAME              parameters and MACs per layer
    kerasnets early-exit --stages ...   evaluate early-exit TFLite stages
    kerasnets explain linear-bottleneck --out fig.png   MobileNetV2 Fig. 1, with numbers

``kerasnets COMMAND --help`` describes each. ``-v`` (before or after COMMAND) shows debug logs
and TensorFlow's own log lines, hidden otherwise. Results (JSON, tables) go to stdout, logs and
progress to stderr. Exit status: 0 on success, 2 on bad input (the message says what), 1 on
other errors.
"""

import argparse
import importlib
import sys

from kerasnets.cli.common import (
    VERBOSE_FLAGS, configure_logging, hide_native_stderr, wants_verbose,
)

# command -> (module, one-line help). Modules are imported only for the command that runs:
# TensorFlow's start-up is seconds, and `kerasnets --help` needs none of it.
COMMANDS = {
    "demo": ("kerasnets.cli.demo", "train, QAT, int8 conversion and evaluation on the embedded data"),
    "train": ("kerasnets.cli.train", "train a registered model with a paper recipe"),
    "convert": ("kerasnets.cli.convert", "convert to TFLite (optionally train / QAT), evaluate"),
    "predict": ("kerasnets.cli.predict", "top-k classes of images by a converted .tflite model"),
    "bench": ("kerasnets.cli.bench", "latency of .tflite models over adb or on this host"),
    "report": ("kerasnets.cli.report", "tables and plots of benchmark records"),
    "profile": ("kerasnets.cli.profile", "parameters and MACs of a registered model, per layer"),
    "early-exit": ("kerasnets.cli.early_exit", "evaluate early-exit TFLite stages"),
    "explain": ("kerasnets.cli.explain", "figures and numbers behind design choices (linear "
                "bottleneck)"),
}


def build_parser():
    """Returns the ``argparse`` parser of ``kerasnets`` (the command and its arguments)."""
    parser = argparse.ArgumentParser(
        prog="kerasnets", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(f"  {name:<11} {text}" for name, (_, text) in COMMANDS.items())
        + "\n\nExit status: 0 on success, 2 on bad input, 1 on other errors.")
    parser.add_argument(*VERBOSE_FLAGS, action="store_true",
                        help="debug logs and TensorFlow's own log lines (hidden otherwise)")
    parser.add_argument("command", choices=COMMANDS, metavar="COMMAND",
                        help="one of: " + ", ".join(COMMANDS))
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the command's arguments")
    return parser


def run_command(command, argv, prog=None):
    """Returns the exit status of one command (a ``COMMANDS`` name) run with the arguments
    ``argv``; ``prog`` names it in usage lines (default ``kerasnets COMMAND``)."""
    # Before the command's own set-up, so that every command logs in the one format.
    configure_logging(verbose=wants_verbose(argv))
    module = importlib.import_module(COMMANDS[command][0])
    return module.main(argv, prog=prog or f"kerasnets {command}")


def main(argv=None):
    """Returns the exit status of ``kerasnets [-v] COMMAND ARGS...``."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return run_command(args.command, ["--verbose"] + args.args if args.verbose else args.args)


def run(command=None, prog=None):
    """Exits with the status of the ``kerasnets`` program (console script, ``python -m
    kerasnets``), or with ``command`` of one command (a script such as ``tflite/convert.py``:
    ``run("convert", prog="python tflite/convert.py")``), TensorFlow's native log lines hidden
    unless ``-v``.

    Hidden from the start, since TensorFlow writes them when it is imported, and to the end,
    since it writes more at exit; written out before the traceback if the command raises (a
    native crash that kills the process loses them: rerun with ``-v``).
    """
    argv = sys.argv[1:]
    write_hidden = None if wants_verbose(argv) else hide_native_stderr()
    try:
        status = main(argv) if command is None else run_command(command, argv, prog)
    except Exception:
        if write_hidden is not None:
            write_hidden()
        raise
    sys.exit(status)
