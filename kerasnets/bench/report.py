"""Tables and plots from benchmark records (``records.py``); the command line is
``kerasnets.cli.report``.

``write_report`` writes to a folder:
    latency.md    markdown table, one row per device x model x precision x threads x delegate
    latency.csv   the same rows
    latency.png   median latency per model and device, one panel per (threads, delegate)
    ops.md        with op-profiled records (--enable_op_profiling=true): the top node types
                  and ops of each row, by time
    pareto.png    with --accuracy-report: accuracy against latency, one series per device and
                  setting, with its Pareto front (the style of Figure 1 of the MobileNetV3
                  paper, Howard et al. 2019)

Each cell is the median over the repeated ok records of that row (several runs appended to the
same file), so one noisy run does not move the table. Failed records are counted, and the last
error of a row is shown.

Precision is the record's (read from the .tflite by benchmark.py, see modelinfo.py). A
converter report.json (keys model, precision, tflite_path, tflite_accuracy, ...) joins a row
on the sha256 of its ``tflite_path`` when that file exists here, else on the file name.
"""

import csv
import json
import logging
import statistics
import tempfile
from pathlib import Path

from kerasnets.bench.modelinfo import file_sha256
from kerasnets.bench.records import RecordsFileError, parse_record_line, read_records

logger = logging.getLogger("kerasnets.bench.report")

# (column title, row key, number format or None for text)
COLUMNS = (
    ("device", "device", None),
    ("model", "model", None),
    ("precision", "precision", None),
    ("threads", "threads", None),
    ("delegate", "delegate", None),
    ("ok/records", "ok_of", None),
    ("avg ms", "avg_ms", "{:.3f}"),
    ("median ms", "median_ms", "{:.3f}"),
    ("min ms", "min_ms", "{:.3f}"),
    ("std ms", "std_ms", "{:.3f}"),
    ("init ms", "init_ms", "{:.1f}"),
    ("memory MB", "memory_overall_mb", "{:.1f}"),
    ("last error", "error", None),
)
# Row key -> record field (microseconds are turned into milliseconds).
_MEDIAN_FIELDS = {
    "avg_ms": "avg_us",
    "median_ms": "median_us",
    "min_ms": "min_us",
    "std_ms": "std_us",
    "init_ms": "init_us",
    "memory_overall_mb": "memory_overall_mb",
}


def device_label(device: dict | None) -> str:
    """Returns a short readable name of a record's device: "Google Pixel 7 (SERIAL)"."""
    device = device or {}
    serial = device.get("serial") or "no device"
    name = " ".join(part for part in (device.get("manufacturer"), device.get("model")) if part)
    if serial == "local":
        return f"local ({name})" if name else "local"
    return f"{name} ({serial})" if name else serial


def _median(values):
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def group_records(records: list[dict]) -> list[list[dict]]:
    """Returns the records grouped by (device, model, precision, threads, delegate)."""
    groups = {}
    for record in records:
        key = (
            (record.get("device") or {}).get("serial"),
            record.get("model_name"),
            record.get("model_sha256"),
            record.get("precision"),
            record.get("threads"),
            record.get("delegate"),
        )
        groups.setdefault(key, []).append(record)
    return list(groups.values())


def summarize(records: list[dict]) -> list[dict]:
    """Returns one row dict per (device, model, precision, threads, delegate).

    Numbers are medians over the group's ok records; ``ok_of`` is "ok/total".
    """
    rows = []
    for group in group_records(records):
        first = group[0]
        ok = [record for record in group if record.get("ok")]
        failed = [record for record in group if not record.get("ok")]
        row = {
            "device": device_label(first.get("device")),
            "serial": (first.get("device") or {}).get("serial"),
            "model": first.get("model_name"),
            "model_sha256": first.get("model_sha256"),
            "precision": first.get("precision") or "unknown",
            "threads": first.get("threads"),
            "delegate": first.get("delegate"),
            "ok_of": f"{len(ok)}/{len(group)}",
            "ok": len(ok),
            "error": failed[-1].get("error") if failed else "",
        }
        for name, field in _MEDIAN_FIELDS.items():
            value = _median(record.get(field) for record in ok)
            scale = 1000.0 if field.endswith("_us") else 1.0
            row[name] = None if value is None else value / scale
        rows.append(row)
    rows.sort(key=lambda r: (r["device"], r["model"] or "", r["precision"], r["threads"] or 0,
                             r["delegate"] or ""))
    return rows


def _row_title(record: dict) -> str:
    """Returns "device, model, precision, threads N, delegate" of a record."""
    return (f"{device_label(record.get('device'))}, {record.get('model_name')}, "
            f"{record.get('precision') or 'unknown'}, threads {record.get('threads')}, "
            f"{record.get('delegate')}")


def _top(entries: list[tuple[str, dict]], top: int) -> list[dict]:
    """Returns the ``top`` keys with the highest median avg_ms over (key, profile row) pairs,
    each as {"key", "avg_ms", "percent", "rows"} with medians over the records."""
    by_key = {}
    for key, row in entries:
        by_key.setdefault(key, []).append(row)
    merged = [{"key": key, "rows": rows,
               "avg_ms": _median(row.get("avg_ms") for row in rows),
               "percent": _median(row.get("percent") for row in rows)}
              for key, rows in by_key.items()]
    merged.sort(key=lambda item: -(item["avg_ms"] or 0.0))
    return merged[:top]


def op_summary(records: list[dict], top: int = 10) -> list[dict]:
    """Returns, per (device, model, precision, threads, delegate) with op-profiled ok records,
    the ``top`` node types and the ``top`` ops by time.

    Each item: ``title``, ``records`` (how many were profiled), ``node_types`` (node_type,
    count, avg_ms, percent) and ``ops`` (name, node_type, avg_ms, percent); times are medians
    over the records, in ms as benchmark_model prints them; percent is the share of a run.
    """
    summary = []
    for group in group_records(records):
        profiles = [r["op_profile"] for r in group if r.get("ok") and r.get("op_profile")]
        if not profiles:
            continue
        node_types = _top([(row["node_type"], row) for p in profiles
                           for row in p.get("node_types", [])], top)
        ops = _top([(row.get("name"), row) for p in profiles
                    for row in p.get("ops") or p.get("top_ops", [])], top)
        summary.append({
            "title": _row_title(group[0]),
            "records": len(profiles),
            "node_types": [{"node_type": item["key"], "count": item["rows"][0].get("count"),
                            "avg_ms": item["avg_ms"], "percent": item["percent"]}
                           for item in node_types],
            "ops": [{"name": item["key"], "node_type": item["rows"][0].get("node_type"),
                     "avg_ms": item["avg_ms"], "percent": item["percent"]} for item in ops],
        })
    return summary


def ops_markdown(summary: list[dict]) -> str:
    """Returns ``op_summary``'s items as markdown: a node-type and an op table per item."""
    parts = ["# Top ops (records with --enable_op_profiling=true)\n"]
    for item in summary:
        parts.append(f"\n## {item['title']} ({item['records']} profiled records)\n\n")
        parts.append(_markdown(("node type", "count", "avg ms", "%"), [
            (row["node_type"], row["count"], _number(row["avg_ms"], 3),
             _number(row["percent"], 2)) for row in item["node_types"]]))
        parts.append("\n")
        parts.append(_markdown(("op", "node type", "avg ms", "%"), [
            (row["name"], row["node_type"], _number(row["avg_ms"], 3),
             _number(row["percent"], 2)) for row in item["ops"]]))
    return "".join(parts)


def _number(value: float | None, decimals: int) -> str:
    return "" if value is None else f"{value:.{decimals}f}"


def _markdown(titles: tuple[str, ...], rows: list[tuple]) -> str:
    """Returns a markdown table (``|`` in cells escaped, None as empty)."""
    lines = ["| " + " | ".join(titles) + " |", "|" + "|".join("---" for _ in titles) + "|"]
    for row in rows:
        cells = ["" if cell is None else str(cell).replace("|", "\\|").replace("\n", " ")
                 for cell in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(row, key, fmt):
    value = row.get(key)
    if value is None:
        return ""
    return fmt.format(value) if fmt else str(value)


def markdown_table(rows: list[dict]) -> str:
    """Returns the rows as a markdown table (``|`` in cells escaped)."""
    return _markdown(tuple(title for title, _, _ in COLUMNS),
                     [tuple(_cell(row, key, fmt) for _, key, fmt in COLUMNS) for row in rows])


def write_csv(rows: list[dict], path: Path) -> None:
    """Writes the rows to ``path`` as CSV with the table's columns."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([title for title, _, _ in COLUMNS])
        for row in rows:
            writer.writerow([_cell(row, key, fmt) for _, key, fmt in COLUMNS])


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_latency(rows: list[dict], path: Path) -> None:
    """Draws median latency per model (bars per device), one panel per (threads, delegate)."""
    plt = _pyplot()
    rows = [row for row in rows if row["avg_ms"] is not None]
    settings = sorted({(row["threads"], row["delegate"]) for row in rows})
    models = sorted({(row["model"], row["precision"]) for row in rows})
    devices = sorted({row["device"] for row in rows})
    height = max(2.5, 0.45 * len(models) * max(1, len(devices)) + 1.2)
    figure, axes = plt.subplots(
        len(settings), 1, figsize=(9, height * len(settings)), squeeze=False
    )
    bar = 0.8 / max(1, len(devices))
    for axis, (threads, delegate) in zip(axes[:, 0], settings):
        for d, device in enumerate(devices):
            positions, values = [], []
            for m, (model, precision) in enumerate(models):
                for row in rows:
                    if (row["device"], row["model"], row["precision"], row["threads"],
                            row["delegate"]) == (device, model, precision, threads, delegate):
                        positions.append(m + d * bar)
                        values.append(row["avg_ms"])
            bars = axis.barh(positions, values, height=bar, label=device)
            axis.bar_label(bars, fmt="%.2f", padding=2, fontsize=7)
        axis.set_yticks([m + bar * (len(devices) - 1) / 2 for m in range(len(models))])
        axis.set_yticklabels([f"{model} ({precision})" for model, precision in models], fontsize=8)
        axis.invert_yaxis()
        axis.set_xlabel("latency, ms (median of record averages)")
        axis.set_title(f"threads {threads}, delegate {delegate}")
        axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _accuracy_entries(path: Path) -> list[dict]:
    """Returns the entries of one converter report file; raises ValueError naming the file (and
    line) and what it probably is when it is not one."""
    data = path.read_bytes()
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"--accuracy-report {path}: not a text file; give the report.json that "
                         "'kerasnets convert' writes beside the .tflite") from None
    except json.JSONDecodeError as error:
        first = data.decode("utf-8").splitlines()[:1]
        try:
            records = first and parse_record_line(path, 1, first[0]) is not None
        except RecordsFileError:
            records = False
        hint = ("; it is benchmark records (JSON lines): give it to report as a records file"
                if records else "; give the report.json that 'kerasnets convert' writes")
        raise ValueError(f"--accuracy-report {path}:{error.lineno}:{error.colno}: not JSON "
                         f"({error.msg}){hint}") from None
    entries = value if isinstance(value, list) else [value]
    for number, entry in enumerate(entries):
        where = f"--accuracy-report {path}" + (f", entry {number}" if isinstance(value, list)
                                               else "")
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: a JSON {type(entry).__name__}, not a report object")
        if "model_name" in entry and "ok" in entry:
            raise ValueError(f"{where}: a benchmark record, not a converter report; give it "
                             "to report as a records file")
        if not isinstance(entry.get("tflite_path"), str):
            raise ValueError(f"{where}: no 'tflite_path' (keys: {', '.join(sorted(entry))}); "
                             "give the report.json that 'kerasnets convert' writes")
        accuracy = entry.get("tflite_accuracy")
        if accuracy is not None and not isinstance(accuracy, (int, float)):
            raise ValueError(f"{where}: tflite_accuracy={accuracy!r} is not a number")
    return entries


def load_accuracy_reports(paths: list[Path | str]) -> list[dict]:
    """Returns the converter report entries (a file holds one dict or a list of dicts).

    Each entry gains ``_sha256`` (of its tflite_path, when that file exists here) and
    ``_name`` (the file name of tflite_path). Raises ValueError naming the file, the line or
    entry and what it probably is, for a file that is not a converter report.
    """
    entries = []
    for path in map(Path, paths):
        for entry in _accuracy_entries(path):
            tflite_path = entry["tflite_path"]
            candidate = Path(tflite_path)
            if not candidate.is_absolute():
                candidate = path.parent / candidate
            entry = dict(entry)
            entry["_sha256"] = file_sha256(candidate) if candidate.is_file() else None
            entry["_name"] = Path(tflite_path).name
            entries.append(entry)
    return entries


def join_accuracy(rows: list[dict], reports: list[dict]) -> list[tuple[dict, dict]]:
    """Returns [(row, report)] for ok rows with a matching report that has an accuracy.

    A report matches a row by the sha256 of its tflite file, else by file name.
    """
    by_sha = {entry["_sha256"]: entry for entry in reports if entry["_sha256"]}
    by_name = {entry["_name"]: entry for entry in reports}
    joined = []
    for row in rows:
        if row["avg_ms"] is None:
            continue
        entry = by_sha.get(row["model_sha256"]) or by_name.get(row["model"])
        if entry is None or entry.get("tflite_accuracy") is None:
            continue
        joined.append((row, entry))
    return joined


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Returns the indices of the (latency, accuracy) points no other point beats.

    A point is beaten when another is at least as fast and at least as accurate, and strictly
    better in one of the two. Indices come sorted by latency.
    """
    front = []
    for i, (latency, accuracy) in enumerate(points):
        beaten = any(
            other_latency <= latency and other_accuracy >= accuracy
            and (other_latency < latency or other_accuracy > accuracy)
            for j, (other_latency, other_accuracy) in enumerate(points)
            if j != i
        )
        if not beaten:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def plot_pareto(joined: list[tuple[dict, dict]], path: Path) -> None:
    """Draws accuracy against latency, one series per (device, threads, delegate), with fronts."""
    plt = _pyplot()
    accuracies = [entry["tflite_accuracy"] for _, entry in joined]
    percent = all(0.0 <= value <= 1.0 for value in accuracies)
    series = {}
    for row, entry in joined:
        key = f"{row['device']}, threads {row['threads']}, {row['delegate']}"
        accuracy = entry["tflite_accuracy"] * (100.0 if percent else 1.0)
        label = f"{entry.get('model', row['model'])} {entry.get('precision', row['precision'])}"
        label += " QAT" if entry.get("qat") else ""
        series.setdefault(key, []).append((row["avg_ms"], accuracy, label))
    figure, axis = plt.subplots(figsize=(8, 6))
    for key, points in sorted(series.items()):
        xy = [(x, y) for x, y, _ in points]
        scatter = axis.scatter([x for x, _ in xy], [y for _, y in xy], label=key, zorder=3)
        front = pareto_front(xy)
        axis.plot([xy[i][0] for i in front], [xy[i][1] for i in front], "--",
                  color=scatter.get_facecolor()[0], zorder=2)
        for x, y, label in points:
            axis.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    axis.set_xlabel("latency, ms (median of record averages)")
    axis.set_ylabel("top-1 accuracy of the .tflite" + (", %" if percent else ""))
    axis.set_title("Accuracy vs latency (dashed: Pareto front)")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# What write_report may write into its folder.
OUTPUT_FILES = ("latency.md", "latency.csv", "ops.md", "latency.png", "pareto.png")


class NoRecordsError(ValueError):
    """The records files hold no record at all (empty files)."""


def check_output_folder(out_dir: Path | str) -> None:
    """Raises ValueError unless the report can be written into ``out_dir`` (created if missing):
    a folder that can be written, none of OUTPUT_FILES in it a folder."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output folder {str(out_dir)!r} is a file; give a folder (it holds "
                         f"{', '.join(OUTPUT_FILES)})")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as error:
        raise ValueError(f"output folder {str(out_dir)!r} cannot be written: "
                         f"{error.strerror or error}") from None
    for name in OUTPUT_FILES:
        if (out_dir / name).is_dir():
            raise ValueError(f"{str(out_dir / name)!r} is a folder; the report writes its "
                             f"{name} there")


def write_report(record_paths: list[Path | str], out_dir: Path | str,
                 accuracy_paths: list[Path | str] = (), top_ops: int = 10) -> dict[str, Path]:
    """Writes the table, CSV and plots to ``out_dir``; returns {name: path} of what it wrote.

    With op-profiled records also ``ops.md``: the ``top_ops`` node types and ops of each row.
    Every input is read and checked before anything is written. Raises ValueError (see
    ``records.read_records``, ``load_accuracy_reports``, ``check_output_folder``) for an input
    that is not what it should be or a folder that cannot be written, NoRecordsError when the
    files hold no records.
    """
    records = read_records(record_paths)
    reports = load_accuracy_reports(accuracy_paths)
    if not records:
        raise NoRecordsError(f"no records in {', '.join(map(str, record_paths))}")
    out_dir = Path(out_dir)
    check_output_folder(out_dir)
    rows = summarize(records)
    written = {"markdown": out_dir / "latency.md", "csv": out_dir / "latency.csv"}
    ok = sum(1 for record in records if record.get("ok"))
    header = (
        f"# On-device latency\n\n{len(records)} records ({ok} ok) from "
        f"{', '.join(Path(p).name for p in record_paths)}. Each cell is the median over the "
        "row's ok records.\n\n"
    )
    written["markdown"].write_text(header + markdown_table(rows), encoding="utf-8")
    write_csv(rows, written["csv"])
    ops = op_summary(records, top_ops)
    if ops:
        written["ops"] = out_dir / "ops.md"
        written["ops"].write_text(ops_markdown(ops), encoding="utf-8")
    if any(row["avg_ms"] is not None for row in rows):
        written["latency_plot"] = out_dir / "latency.png"
        plot_latency(rows, written["latency_plot"])
    if reports:
        joined = join_accuracy(rows, reports)
        if joined:
            written["pareto_plot"] = out_dir / "pareto.png"
            plot_pareto(joined, written["pareto_plot"])
        else:
            logger.warning("no accuracy report matches an ok row (by sha256 or file name)")
    return written
