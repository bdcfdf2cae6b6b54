"""Parser for the text that the TFLite ``benchmark_model`` tool prints.

Real devices print several variants (see ../shared/REFERENCE.md): lines with an ``INFO: ``
prefix or a logcat prefix (``07-08 15:34:26.202 I/tflite  ( 5395): ``), numbers as integers,
decimals or C++ ``%g`` scientific notation (``2.95034e+06``), newer builds add
``p5=... median=... p95=...`` to the statistics line, and older builds print
``Average inference timings in us: Warmup: ..., Init: ..., no stats: ...`` and
``Peak memory footprint (MB): init=... overall=...``. Every pattern below is searched anywhere
in a line, so any prefix is accepted.

Where each field comes from:
    avg_us, init_us, first_us, warmup_avg_us
        the summary line ``Inference timings in us: Init: ..., First inference: ...,
        Warmup (avg): ..., Inference (avg): ...`` (older builds: ``Warmup``, ``Init`` and
        ``no stats``, the average of the timed runs).
    count, std_us, min_us, max_us, median_us, p5_us, p95_us
        the last ``count=...`` line, which the tool prints after the timed runs (the one before
        it belongs to the warm-up runs). ``count=1 curr=X`` (the tool's "all same" form) means
        min = max = X and std = 0. Percentiles are None when the build does not print them.
    memory_init_mb, memory_overall_mb, memory_kind
        ``Memory footprint delta from the start of the tool (MB): init=... overall=...``
        (memory_kind "delta": growth of the process's peak RSS since the tool started) or the
        older ``Peak memory footprint (MB): init=... overall=...`` (memory_kind "peak").
    memory_peak_mb
        ``Overall peak memory footprint (MB) via periodic monitoring: ...`` (printed with
        ``--report_peak_memory_footprint=true``).
"""

import re

# A number as C++ iostreams print it: integer, decimal or scientific, possibly inf/nan.
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf|nan"

_SUMMARY = re.compile(r"Inference timings in us:(.*)$")
_OLD_SUMMARY = re.compile(r"Average inference timings in us:(.*)$")
_STAT_LINE = re.compile(r"(?:^|[\s:])count=(\d+)(.*)$")
_KEY_VALUE = re.compile(rf"(\w+)=({_NUMBER})(?=\s|\(|$)")
_LABEL_VALUE = re.compile(rf"\s*([^:,]+?):\s*({_NUMBER})\s*(?:,|$)")
_MEMORY_DELTA = re.compile(
    rf"Memory footprint delta from the start of the tool \(MB\): init=({_NUMBER}) "
    rf"overall=({_NUMBER})"
)
_MEMORY_PEAK_OLD = re.compile(rf"Peak memory footprint \(MB\): init=({_NUMBER}) overall=({_NUMBER})")
_MEMORY_PEAK_MONITOR = re.compile(
    rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUMBER})"
)

# Labels of the summary line, modern and old, mapped to record fields.
_SUMMARY_LABELS = {
    "Init": "init_us",
    "First inference": "first_us",
    "Warmup (avg)": "warmup_avg_us",
    "Inference (avg)": "avg_us",
}
_OLD_SUMMARY_LABELS = {"Warmup": "warmup_avg_us", "Init": "init_us", "no stats": "avg_us"}
# The patterns never match the same line ("Average inference ..." has a lower-case "i").
_SUMMARIES = ((_SUMMARY, _SUMMARY_LABELS), (_OLD_SUMMARY, _OLD_SUMMARY_LABELS))
_MEMORY_LINES = ((_MEMORY_DELTA, "delta"), (_MEMORY_PEAK_OLD, "peak"))

TIMING_FIELDS = (
    "init_us",
    "first_us",
    "warmup_avg_us",
    "warmup_count",
    "avg_us",
    "std_us",
    "min_us",
    "max_us",
    "median_us",
    "p5_us",
    "p95_us",
    "count",
    "memory_init_mb",
    "memory_overall_mb",
    "memory_peak_mb",
    "memory_kind",
)


class BenchmarkOutputError(ValueError):
    """The text is not a complete ``benchmark_model`` result."""


def empty_result():
    """Returns a dict with every field of TIMING_FIELDS set to None."""
    return dict.fromkeys(TIMING_FIELDS)


def _stat_line(rest, count):
    """Returns the fields of one ``count=...`` line (the part after ``count=N``)."""
    values = {key: float(value) for key, value in _KEY_VALUE.findall(rest)}
    if "min" not in values and "curr" in values:
        # Stat::OutputToStream prints only "count=N curr=X" when every sample was the same.
        values.update(min=values["curr"], max=values["curr"], avg=values["curr"], std=0.0)
        values.setdefault("first", values["curr"])
    values["count"] = count
    return values


def _summary(text, labels):
    """Returns {field: value} for the ``Label: value`` pairs of a summary line."""
    found = {}
    for label, value in _LABEL_VALUE.findall(text):
        field = labels.get(label.strip())
        if field is not None:
            found[field] = float(value)
    return found


def parse_benchmark_output(text):
    """Returns a dict of TIMING_FIELDS parsed from ``benchmark_model`` output.

    Raises BenchmarkOutputError when there is no summary line with the average inference time
    (a crash, a truncated run, or output that is not from the tool).
    """
    result = empty_result()
    stats = []
    summary = None
    for line in text.splitlines():
        line = line.rstrip("\r")
        for pattern, labels in _SUMMARIES:
            match = pattern.search(line)
            if match:
                summary = _summary(match.group(1), labels)
        stat = _STAT_LINE.search(line)
        if stat:
            stats.append(_stat_line(stat.group(2), int(stat.group(1))))
        for pattern, kind in _MEMORY_LINES:
            match = pattern.search(line)
            if match:
                result.update(memory_init_mb=float(match.group(1)),
                              memory_overall_mb=float(match.group(2)), memory_kind=kind)
        peak = _MEMORY_PEAK_MONITOR.search(line)
        if peak:
            result["memory_peak_mb"] = float(peak.group(1))

    if summary is None:
        raise BenchmarkOutputError(
            "no 'Inference timings in us' line in the benchmark_model output"
        )
    if "avg_us" not in summary:
        raise BenchmarkOutputError(
            "the 'Inference timings in us' line has no inference average"
        )
    result.update(summary)

    if stats:
        timed = stats[-1]
        result["count"] = timed["count"]
        for key, field in (
            ("std", "std_us"),
            ("min", "min_us"),
            ("max", "max_us"),
            ("median", "median_us"),
            ("p5", "p5_us"),
            ("p95", "p95_us"),
        ):
            result[field] = timed.get(key)
    if len(stats) >= 2:
        warmup = stats[-2]
        result["warmup_count"] = warmup["count"]
        if result["first_us"] is None:
            result["first_us"] = warmup.get("first")
    return result
