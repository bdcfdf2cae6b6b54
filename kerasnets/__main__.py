"""Command line of kerasnets: ``python -m kerasnets demo`` and ``python -m kerasnets profile``.

    python -m kerasnets demo [--out DIR] [--hard-swish xnnpack|fused]
    python -m kerasnets profile NAME [--input-size N] [--classes N]

Exit status: 0 on success, 2 on bad input (the message says what), 1 on other errors.
"""

import argparse
import logging
import sys


def build_parser():
    """Returns the ``argparse`` parser of ``python -m kerasnets``."""
    parser = argparse.ArgumentParser(
        prog="python -m kerasnets", description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 on success, 2 on bad input, 1 on other errors.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="train, QAT, int8 TFLite conversion and evaluation on the embedded dataset",
        description="Train a small MobileNetV3 on the embedded CIFAR-10 subset, fine-tune it "
                    "with QAT, convert it to int8 TFLite, evaluate float vs int8 and print a "
                    "table (a few minutes on 2 CPU cores).")
    demo.add_argument("--out", default="out/demo",
                      help="folder for the .tflite and report.json (default: %(default)s)")
    demo.add_argument("--hard-swish", choices=("xnnpack", "fused"), default="xnnpack",
                      help="int8 form of hard-swish (default: %(default)s)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    profile = commands.add_parser(
        "profile", help="parameters and MACs of a registered model, per layer",
        description="Print the parameter and multiply-accumulate (MAC) counts of a registered "
                    "model, per layer and in total.")
    profile.add_argument("name", help="registered model name (see kerasnets.list_models())")
    profile.add_argument("--input-size", type=int,
                         help="square input side (default: the model's default size)")
    profile.add_argument("--classes", type=int, default=1000,
                         help="classifier classes (default: %(default)s)")
    return parser


def profile_command(name, input_size=None, classes=1000):
    """Returns the text ``python -m kerasnets profile`` prints for a registered model."""
    import kerasnets
    from kerasnets.registry import get_entry

    entry = get_entry(name)
    size = entry.default_size if input_size is None else input_size
    model = kerasnets.create_model(name, input_shape=(size, size, 3), classes=classes)
    return str(kerasnets.profile(model))


def main(argv=None):
    """Returns the exit status of ``python -m kerasnets``."""
    args = build_parser().parse_args(argv)
    from kerasnets.cli import call_reporting_errors, configure_logging

    configure_logging()
    if args.command == "demo":
        from kerasnets import demo

        return demo.main(args.out, args.hard_swish, progress=not args.no_progress)
    status, table = call_reporting_errors(logging.getLogger("kerasnets"), profile_command,
                                          args.name, args.input_size, args.classes)
    if table is not None:
        print(table)
    return status


if __name__ == "__main__":
    sys.exit(main())
