"""``kerasnets profile NAME``: parameters and multiply-accumulates (MACs) of a registered model,
per layer and in total (``kerasnets.models.profiler``)."""

import argparse
import logging

from kerasnets.cli.common import add_verbose_argument, call_reporting_errors, configure_logging

log = logging.getLogger("kerasnets.profile")


def build_parser(prog="kerasnets profile"):
    """Returns the ``argparse`` parser of ``kerasnets profile``."""
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 on success, 2 on bad input, 1 on other errors.")
    parser.add_argument("name", help="registered model name (kerasnets.list_models())")
    parser.add_argument("--input-size", type=int,
                        help="square input side (default: the model's default size)")
    parser.add_argument("--classes", type=int, default=1000,
                        help="classifier classes (default: %(default)s)")
    add_verbose_argument(parser)
    return parser


def profile_text(name, input_size=None, classes=1000):
    """Returns the table ``kerasnets profile`` prints for a registered model (str)."""
    from kerasnets.models import create_model, get_entry, profile

    entry = get_entry(name)
    size = entry.default_size if input_size is None else input_size
    model = create_model(name, input_shape=(size, size, 3), classes=classes)
    return str(profile(model))


def main(argv=None, prog="kerasnets profile"):
    """Returns the exit status of ``kerasnets profile`` after printing the table."""
    args = build_parser(prog).parse_args(argv)
    configure_logging(verbose=args.verbose)
    status, table = call_reporting_errors(log, profile_text, args.name, args.input_size,
                                          args.classes)
    if table is not None:
        print(table)
    return status
