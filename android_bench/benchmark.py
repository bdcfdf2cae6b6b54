"""Measure TFLite model latency on Android devices over adb (or on this host, ``--target local``); the design card's command line, ``kerasnets bench``."""

import sys

from kerasnets.cli import bench

if __name__ == "__main__":
    sys.exit(bench.main(prog="python android_bench/benchmark.py"))
