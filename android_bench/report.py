"""Aggregate benchmark records into tables and plots; the design card's command line, ``kerasnets report``."""

import sys

from kerasnets.cli import report

if __name__ == "__main__":
    sys.exit(report.main(prog="python android_bench/report.py"))
