"""Aggregate benchmark records into tables and plots; the design card's command line, the same
as ``kerasnets report``."""

from kerasnets.cli import run

if __name__ == "__main__":
    run("report", prog="python android_bench/report.py")
