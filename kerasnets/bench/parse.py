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
        the run statistics of the timed runs: a ``count=...`` line standing alone (nothing but a
        log prefix before ``count=``). The tool prints one after each ``Running benchmark for at
        least N iterations ...`` line, warm-up first, timed runs second; builds that do not print
        those lines print them before the summary line, the timed runs' last. The profiling
        tables' own ``Timings (microseconds): count=...`` and ``Memory (bytes): count=...``
        lines are not run statistics, wherever they come. ``count=1 curr=X`` (the tool's "all
        same" form) means min = max = X and std = 0. Percentiles are None when the build does
        not print them.
    warmup_count
        the warm-up runs' statistics line, found the same way.
    memory_init_mb, memory_overall_mb, memory_kind
        ``Memory footprint delta from the start of the tool (MB): init=... overall=...``
        (memory_kind "delta": growth of the process's peak RSS since the tool started) or the
        older ``Peak memory footprint (MB): init=... overall=...`` (memory_kind "peak").
    memory_peak_mb
        ``Overall peak memory footprint (MB) via periodic monitoring: ...`` (printed with
        ``--report_peak_memory_footprint=true``).
    op_profile
        with ``--enable_op_profiling=true``: the tables of the regular runs (the section
        ``Operator-wise Profiling Info for Regular Benchmark Runs``; the initialization section
        before it is left out), before or after the summary line:
        ``{"nodes": N, "node_types": [...], "top_ops": [...], "ops": [...]}`` from ``Summary by
        node type`` (per node type: node_type, count, avg_ms, percent, cdf_percent, mem_kb,
        times_called), ``Top by Computation Time`` and ``Run Order`` (per node: node_type,
        start_ms, first_ms, avg_ms, percent, cdf_percent, mem_kb, times_called, name) and
        ``Number of nodes executed: N``. Columns are read by their header, tab-separated, as
        tensorflow/core/util/stats_calculator.cc prints them. None without profiling output.
"""

import re

# A number as C++ iostreams print it: integer, decimal or scientific, possibly inf/nan.
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf|nan"

# The log prefixes a line may carry: logcat's (Android benchmark app; "brief" format
# "07-08 15:34:26.202 I/tflite  ( 5395): ", or "threadtime" "07-08 15:34:26.202  5395  5395 I
# tflite  : "), then the tool's "INFO: ".
_PREFIX = re.compile(r"^(?:\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+(?:[VDIWEF]/[^(]*\(\s*\d+\)"
                     r"|\d+\s+\d+\s+[VDIWEF]\s+[^:]*?\s*):\s?)?(?:INFO: )?")
_SUMMARY = re.compile(r"Inference timings in us:(.*)$")
_OLD_SUMMARY = re.compile(r"Average inference timings in us:(.*)$")
_RUN_HEADER = re.compile(r"^Running benchmark for at least \d+ iterations")
_STAT_LINE = re.compile(r"^count=(\d+)(.*)$")
_KEY_VALUE = re.compile(rf"(\w+)=({_NUMBER})(?=\s|\(|$)")
_LABEL_VALUE = re.compile(rf"\s*([^:,]+?):\s*({_NUMBER})\s*(?:,|$)")
_MEMORY_DELTA = re.compile(
    rf"Memory footprint delta from the start of the tool \(MB\): init=({_NUMBER}) "
    rf"overall=({_NUMBER})"
)
_MEMORY_PEAK_OLD = re.compile(
    rf"Peak memory footprint \(MB\): init=({_NUMBER}) overall=({_NUMBER})"
)
_MEMORY_PEAK_MONITOR = re.compile(
    rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUMBER})"
)
_PROFILE_RUNS = re.compile(r"Operator-wise Profiling Info for Regular Benchmark Runs")
_PROFILE_INIT = re.compile(r"Profiling Info for Benchmark Initialization")
_TABLE_TITLE = re.compile(r"^=+ (.+?) =+\s*$")
_NODES = re.compile(r"^Number of nodes executed: (\d+)")

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

# Profiling table title -> op_profile key; column header (lower case) -> row field, type.
_TABLES = {"Run Order": "ops", "Top by Computation Time": "top_ops",
           "Summary by node type": "node_types"}
_COLUMNS = {
    "[node type]": ("node_type", str),
    "[count]": ("count", int),
    "[start]": ("start_ms", float),
    "[first]": ("first_ms", float),
    "[avg ms]": ("avg_ms", float),
    "[%]": ("percent", float),
    "[avg %]": ("percent", float),
    "[cdf%]": ("cdf_percent", float),
    "[cdf %]": ("cdf_percent", float),
    "[mem kb]": ("mem_kb", float),
    "[times called]": ("times_called", int),
    "[name]": ("name", str),
}

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
    "op_profile",
)


class BenchmarkOutputError(ValueError):
    """The text is not a complete ``benchmark_model`` result."""


def empty_result() -> dict:
    """Returns a dict with every field of TIMING_FIELDS set to None."""
    return dict.fromkeys(TIMING_FIELDS)


def _stat_line(rest: str, count: int) -> dict:
    """Returns the fields of one ``count=...`` line (the part after ``count=N``)."""
    values = {key: float(value) for key, value in _KEY_VALUE.findall(rest)}
    if "min" not in values and "curr" in values:
        # Stat::OutputToStream prints only "count=N curr=X" when every sample was the same.
        values.update(min=values["curr"], max=values["curr"], avg=values["curr"], std=0.0)
        values.setdefault("first", values["curr"])
    values["count"] = count
    return values


def _summary(text: str, labels: dict) -> dict:
    """Returns {field: value} for the ``Label: value`` pairs of a summary line."""
    found = {}
    for label, value in _LABEL_VALUE.findall(text):
        field = labels.get(label.strip())
        if field is not None:
            found[field] = float(value)
    return found


class _ProfileReader:
    """Collects the op-profiling tables of the regular runs, line by line."""

    def __init__(self):
        self.section = "runs"  # tables with no section line before them are the runs'
        self.table = None
        self.columns = None
        self.found = {"init": {}, "runs": {}}

    def feed(self, body: str) -> bool:
        """Takes one line (without log prefix); returns whether it belonged to the profile."""
        if _PROFILE_RUNS.search(body) or _PROFILE_INIT.search(body):
            self.section = "runs" if _PROFILE_RUNS.search(body) else "init"
            self.table = None
            return True
        title = _TABLE_TITLE.match(body)
        if title:
            self.table = _TABLES.get(title.group(1).strip())
            self.columns = None
            return True
        nodes = _NODES.match(body)
        if nodes:
            self.found[self.section]["nodes"] = int(nodes.group(1))
            return True
        if self.table is None or not body.startswith("\t"):
            self.table = None  # a table ends at its first line that is not a row
            return False
        cells = [cell.strip() for cell in body.split("\t")[1:]]
        if self.columns is None:
            self.columns = [_COLUMNS.get(cell.lower()) for cell in cells]
        elif len(cells) == len(self.columns):
            self.found[self.section].setdefault(self.table, []).append(self._row(cells))
        return True

    def _row(self, cells: list[str]) -> dict:
        row = {}
        for column, cell in zip(self.columns, cells):
            if column is not None:
                name, kind = column
                row[name] = cell if kind is str else kind(float(cell.rstrip("%")))
        return row

    def result(self) -> dict | None:
        """Returns the runs' op_profile dict, or None when no profiling table was printed."""
        runs = self.found["runs"]
        if not any(key in runs for key in _TABLES.values()):
            return None
        return {"nodes": runs.get("nodes"), **{key: runs.get(key, []) for key in
                                               ("node_types", "top_ops", "ops")}}


def _run_statistics(bodies: list[str]) -> list[dict]:
    """Returns the run statistics lines, warm-up then timed runs (see the module docstring)."""
    after_header, before_summary = [], []
    header_pending = summary_seen = False
    for body in bodies:
        if _RUN_HEADER.match(body):
            header_pending = True
        elif _SUMMARY.search(body) or _OLD_SUMMARY.search(body):
            summary_seen = True
        else:
            stat = _STAT_LINE.match(body)
            if stat is None:
                continue
            values = _stat_line(stat.group(2), int(stat.group(1)))
            if header_pending:
                after_header.append(values)
                header_pending = False
            if not summary_seen:
                before_summary.append(values)
    return after_header or before_summary


def parse_benchmark_output(text: str) -> dict:
    """Returns a dict of TIMING_FIELDS parsed from ``benchmark_model`` output.

    Raises BenchmarkOutputError when there is no summary line with the average inference time
    (a crash, a truncated run, or output that is not from the tool).
    """
    result = empty_result()
    bodies = [_PREFIX.sub("", line.rstrip("\r"), count=1) for line in text.splitlines()]
    summary = None
    profile = _ProfileReader()
    for body in bodies:
        if profile.feed(body):
            continue
        for pattern, labels in _SUMMARIES:
            match = pattern.search(body)
            if match:
                summary = _summary(match.group(1), labels)
        for pattern, kind in _MEMORY_LINES:
            match = pattern.search(body)
            if match:
                result.update(memory_init_mb=float(match.group(1)),
                              memory_overall_mb=float(match.group(2)), memory_kind=kind)
        peak = _MEMORY_PEAK_MONITOR.search(body)
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
    result["op_profile"] = profile.result()

    stats = _run_statistics(bodies)
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
