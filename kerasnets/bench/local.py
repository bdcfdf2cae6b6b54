"""``--target local``: the ``benchmark_model`` measurement on this host, with LiteRT.

For a user without a phone: the same record fields, measured with
``ai_edge_litert.interpreter.Interpreter``. benchmark.py runs each (model, threads, delegate)
as ``python -m kerasnets.bench.local '{"model_path": ..., "threads": ...}'`` in a fresh process,
as benchmark_model is a fresh process per run. The method follows benchmark_model (tensorflow/lite/tools/benchmark/
benchmark_model.cc) step by step; where it differs, it says so:

- init_us: benchmark_model times Init() (load the model, build the interpreter, apply the
  delegates, AllocateTensors); here ``Interpreter(model_path, ...)`` + ``allocate_tensors()``.
- inputs: random values of each input's dtype, in both.
- warm-up: at least ``--warmup_runs`` (default 1) runs and at least ``--warmup_min_secs``
  (default 0.5 s), in both; first_us is the first warm-up run, warmup_avg_us their mean.
- timed runs: at least ``--num_runs`` (default 50) and at least ``--min_secs`` (default 1 s),
  no run started after ``--max_secs`` (150 s), in both.
- one run: benchmark_model reads NowMicros() around Invoke(); here perf_counter_ns() around
  ``invoke()``, which adds the Python binding's call (a few microseconds).
- statistics: mean, population standard deviation sqrt(E[x^2] - avg^2), min, max, in both
  (benchmark_model prints the deviation truncated to an integer); p5/median/p95 by linear
  interpolation here, printed only by newer benchmark_model builds.
- memory: benchmark_model reports the growth of the process's *peak* RSS (getrusage
  ru_maxrss) since the tool started (memory_kind "delta"). Here the peak is useless: importing
  numpy and LiteRT peaks above what a small model adds, so the peak does not move. The local
  record holds the growth of the *current* RSS (VmRSS in /proc/self/status) from just before
  init (memory_kind "rss_delta"; None off Linux). Same order of magnitude, not the same number.
- delegates: "cpu" = ``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES`` (benchmark_model
  ``--use_xnnpack=false``), "xnnpack" = ``OpResolverType.AUTO``, whose default delegate is
  XNNPACK (``--use_xnnpack=true``). "gpu" and "nnapi" are not available here (error record).

LiteRT's own ``python -m ai_edge_litert.tools.benchmark_litert_model`` differs: it uses the
CompiledModel API, runs exactly ``--warmup_runs`` (default 5) and ``--num_runs`` (default 50)
with no minimum duration, reports the sample standard deviation, and rounds to 0.01 ms.
benchmarks/bench_local_vs_litert_tool.py compares the two side by side.
"""

import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ai_edge_litert import __version__ as litert_version
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from kerasnets.bench.parse import empty_result

# The op resolver that gives each delegate name its meaning on this host.
LOCAL_DELEGATES = {
    "cpu": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    "xnnpack": OpResolverType.AUTO,
}

# benchmark_model's defaults (BenchmarkModel::DefaultParams).
DEFAULT_MIN_SECS = 1.0
DEFAULT_WARMUP_MIN_SECS = 0.5
DEFAULT_MAX_SECS = 150.0


def _rss_mb():
    """Returns this process's current resident set size in MB (VmRSS), None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _cpu_name():
    """Returns the CPU model name from /proc/cpuinfo, else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


# /proc/cpuinfo flags of int8 dot-product instructions: x86 AVX-512 VNNI and AVX-VNNI (the
# "flags" line), ARMv8.2 SDOT/UDOT and ARMv8.6 int8 matrix multiply (the "Features" line).
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "asimddp", "i8mm")


def cpu_features(cpuinfo: str | None = None) -> list[str] | None:
    """Returns the int8 dot-product flags (``INT8_DOT_FLAGS``) this CPU reports, in that order.

    ``cpuinfo`` is the text of /proc/cpuinfo (read from the file when None). The flags come
    from the first ``flags`` (x86) or ``Features`` (ARM) line; ``[]`` means the CPU reports
    none, None that there is no such line to read (no /proc/cpuinfo: not Linux), so a caller
    says "no int8 dot products" only from the flags, never from a guess.
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
                cpuinfo = handle.read()
        except OSError:
            return None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            present = set(value.split())
            return [flag for flag in INT8_DOT_FLAGS if flag in present]
    return None


def host_cpu_line() -> str:
    """Returns one line naming this CPU, its int8 dot-product flags and the load average, e.g.
    ``"CPU: Intel(R) Xeon(R) ... (2 cores), int8 dot products: avx512_vnni; load 4.1 3.9 3.2"``."""
    flags = cpu_features()
    dot = ("unknown (no /proc/cpuinfo flags)" if flags is None
           else ", ".join(flags) if flags else "none (no avx512_vnni/avx_vnni/asimddp/i8mm flag)")
    load = " ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "-"
    return (f"CPU: {_cpu_name()} ({os.cpu_count()} cores), int8 dot products: {dot}; "
            f"load average {load}")


def host_device_info() -> dict:
    """Returns the record's ``device`` dict describing this host."""
    machine = platform.machine()
    return {
        "serial": "local",
        "manufacturer": None,
        "model": _cpu_name(),
        "soc": None,
        "soc_manufacturer": None,
        "platform": platform.platform(),
        "hardware": machine,
        "android_version": None,
        "sdk": None,
        "abi": machine,
        "abilist": [machine],
        "fingerprint": f"ai_edge_litert {litert_version}, python {platform.python_version()}",
    }


def timed_runs(step: Callable[[], object], min_runs: int, min_secs: float,
               max_secs: float) -> list[float]:
    """Returns the durations (us) of calls to ``step``, with benchmark_model's stopping rule.

    Runs while fewer than ``min_runs`` runs were made or less than ``min_secs`` passed, and
    starts no run after ``max_secs``.
    """
    samples = []
    now = time.perf_counter()
    min_finish = now + min_secs
    max_finish = now + max_secs
    while (len(samples) < min_runs or now < min_finish) and now <= max_finish:
        start = time.perf_counter_ns()
        step()
        samples.append((time.perf_counter_ns() - start) / 1000.0)
        now = time.perf_counter()
    return samples


def summarize(samples_us: list[float]) -> dict:
    """Returns count, avg, population std, min, max, median, p5, p95 of ``samples_us``."""
    values = np.asarray(samples_us, dtype=np.float64)
    avg = float(values.mean())
    variance = max(float(np.mean(values * values)) - avg * avg, 0.0)
    p5, median, p95 = np.percentile(values, [5, 50, 95])
    return {
        "count": int(values.size),
        "avg_us": avg,
        "std_us": math.sqrt(variance),
        "min_us": float(values.min()),
        "max_us": float(values.max()),
        "median_us": float(median),
        "p5_us": float(p5),
        "p95_us": float(p95),
    }


def _fill_random_inputs(interpreter, rng):
    """Sets every input of ``interpreter`` to random values of its dtype."""
    for detail in interpreter.get_input_details():
        dtype = np.dtype(detail["dtype"])
        shape = detail["shape"]
        if np.issubdtype(dtype, np.floating):
            data = rng.uniform(-1.0, 1.0, shape).astype(dtype)
        elif np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            data = rng.integers(max(info.min, -128), min(info.max, 127) + 1, shape).astype(dtype)
        else:
            data = np.zeros(shape, dtype=dtype)
        interpreter.set_tensor(detail["index"], data)


def check_delegate(delegate: str) -> None:
    """Raises ValueError when ``delegate`` cannot run on this host."""
    if delegate not in LOCAL_DELEGATES:
        raise ValueError(
            f"delegate={delegate!r} is not available with --target local; "
            f"allowed: {', '.join(LOCAL_DELEGATES)}"
        )


def benchmark_local(
    model_path: Path | str,
    threads: int,
    delegate: str,
    runs: int = 50,
    warmup: int = 1,
    min_secs: float = DEFAULT_MIN_SECS,
    warmup_min_secs: float = DEFAULT_WARMUP_MIN_SECS,
    max_secs: float = DEFAULT_MAX_SECS,
    seed: int = 0,
) -> dict:
    """Returns the timing fields of kerasnets.bench.parse for one model on this host.

    ``threads`` is the interpreter's thread count, ``delegate`` "cpu" or "xnnpack".
    Raises ValueError for a delegate this host cannot run.
    """
    check_delegate(delegate)
    resolver = LOCAL_DELEGATES[delegate]
    rss_start = _rss_mb()
    start = time.perf_counter_ns()
    interpreter = Interpreter(
        model_path=str(model_path), num_threads=threads, experimental_op_resolver_type=resolver
    )
    interpreter.allocate_tensors()
    init_us = (time.perf_counter_ns() - start) / 1000.0
    rss_init = _rss_mb()

    _fill_random_inputs(interpreter, np.random.default_rng(seed))
    warmup_samples = timed_runs(interpreter.invoke, warmup, warmup_min_secs, max_secs)
    samples = timed_runs(interpreter.invoke, runs, min_secs, max_secs)
    rss_end = _rss_mb()

    result = empty_result()
    result.update(summarize(samples))
    result.update(
        init_us=init_us,
        first_us=warmup_samples[0] if warmup_samples else None,
        warmup_avg_us=float(np.mean(warmup_samples)) if warmup_samples else None,
        warmup_count=len(warmup_samples),
    )
    if rss_start is not None:
        result.update(memory_init_mb=rss_init - rss_start, memory_overall_mb=rss_end - rss_start,
                      memory_kind="rss_delta")
    return result


def command_line(**arguments: object) -> list[str]:
    """Returns the argv that runs ``benchmark_local(**arguments)`` in a fresh process (see main)."""
    return [sys.executable, "-m", "kerasnets.bench.local", json.dumps(arguments)]


def main(argv: list[str] | None = None) -> int:
    """Prints ``benchmark_local(**arguments)`` as one JSON line, the arguments one JSON object
    (``command_line``'s); returns 0. ``--target local`` runs this once per (model, threads,
    delegate), each in a fresh process like benchmark_model."""
    arguments = json.loads((sys.argv[1:] if argv is None else argv)[0])
    print(json.dumps(benchmark_local(**arguments)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
