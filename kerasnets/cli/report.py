"""``kerasnets report``: tables and plots of the benchmark records that ``kerasnets bench``
writes (``kerasnets.bench.report``).

    kerasnets report results.jsonl [more.jsonl ...] [--out DIR] \\
        [--accuracy-report out/v3s/report.json ...]

Writes latency.md, latency.csv and latency.png to DIR (default: report/ beside the first records
file), ops.md (the top node types and ops by time) for records measured with
--enable_op_profiling=true, and pareto.png (accuracy against latency) with converter report.json
files. Each cell is the median over the repeated ok records of its row.
"""

import argparse
import logging
from pathlib import Path

from kerasnets.bench.report import NoRecordsError, write_report
from kerasnets.cli.common import (
    EXIT_BAD_INPUT, EXIT_ERROR, EXIT_OK, add_verbose_argument, configure_logging,
)

logger = logging.getLogger("kerasnets.bench.report")

EXIT_NO_DATA = EXIT_ERROR
EXIT_USAGE = EXIT_BAD_INPUT


def build_parser(prog: str = "kerasnets report") -> argparse.ArgumentParser:
    """Returns the argparse parser of this command line."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status: 0 written; 1 no records; 2 command-line error, an input that is not "
               "what it should be, or an --out that cannot be written (nothing written)",
    )
    parser.add_argument("records", nargs="+", type=Path, metavar="results.jsonl")
    parser.add_argument("--out", type=Path, help="output folder (default: report/ beside the "
                                                 "first records file)")
    parser.add_argument("--accuracy-report", action="append", default=[], type=Path,
                        help="converter report.json (repeatable) for the Pareto chart")
    parser.add_argument("--top-ops", type=int, default=10, metavar="N",
                        help="node types and ops per row in ops.md, for records measured with "
                             "--extra-args=--enable_op_profiling=true (default 10)")
    add_verbose_argument(parser)
    return parser


def main(argv: list[str] | None = None, prog: str = "kerasnets report") -> int:
    """Runs the command line; returns 0, 1 (no records) or 2 (usage error)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    configure_logging(verbose=args.verbose)
    if args.top_ops < 1:
        parser.error(f"--top-ops={args.top_ops}: expected a count >= 1")
    for path in [*args.records, *args.accuracy_report]:
        if not path.is_file():
            logger.error("%s %s", str(path), "does not exist" if not path.exists() else
                         "is not a file")
            return EXIT_USAGE
    out_dir = args.out or args.records[0].parent / "report"
    try:
        written = write_report(args.records, out_dir, args.accuracy_report, args.top_ops)
    except NoRecordsError as error:
        logger.error("%s", error)
        return EXIT_NO_DATA
    except ValueError as error:
        logger.error("%s", error)
        return EXIT_USAGE
    for name, path in written.items():
        logger.info("%s: %s", name, path)
    return EXIT_OK
