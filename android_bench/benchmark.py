"""Measure TFLite model latency on Android devices over adb (or on this host, ``--target local``); the design card's command line over ``kerasnets.bench.benchmark``."""

import sys

from kerasnets.bench import benchmark

if __name__ == "__main__":
    sys.exit(benchmark.main(prog="python android_bench/benchmark.py"))
