"""Measure TFLite model latency on Android devices over adb (or on this host, ``--target
local``); the design card's command line, the same as ``kerasnets bench``."""

from kerasnets.cli import run

if __name__ == "__main__":
    run("bench", prog="python android_bench/benchmark.py")
