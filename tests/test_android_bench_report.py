"""Tests of android_bench/report.py on hand-written records with known medians."""

import csv
import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image

from kerasnets.bench import report
from kerasnets.cli import report as report_cli

PIXEL = {"serial": "A1", "manufacturer": "Google", "model": "Pixel 7"}
GALAXY = {"serial": "B2", "manufacturer": "samsung", "model": "SM-S911B"}


def record(device, model, avg_us, ok=True, threads=1, delegate="xnnpack", precision="float32",
           sha=None, error=None):
    return {
        "device": device, "model_name": model, "model_sha256": sha or f"sha-{model}",
        "precision": precision, "threads": threads, "delegate": delegate, "ok": ok,
        "avg_us": avg_us if ok else None, "median_us": None if avg_us is None or not ok
        else avg_us - 100, "min_us": None if not ok else avg_us - 200, "std_us": 50.0 if ok
        else None, "init_us": 7000.0 if ok else None, "memory_overall_mb": 12.0 if ok else None,
        "error": error,
    }


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def records():
    return [
        record(PIXEL, "v3_small.tflite", 3000.0),
        record(PIXEL, "v3_small.tflite", 1000.0),
        record(PIXEL, "v3_small.tflite", 2000.0),
        record(PIXEL, "v3_small.tflite", None, ok=False,
               error="model v3_small.tflite on device A1: benchmark_model crashed"),
        record(PIXEL, "v3_small.tflite", 1500.0, threads=4),
        record(GALAXY, "v3_small.tflite", 2500.0),
        record(PIXEL, "v3_small_int8.tflite", 4000.0, precision="int8"),
        record(PIXEL, "my|model.tflite", 9000.0),
    ]


def test_rows_are_medians_over_repeated_records(records):
    rows = {(r["serial"], r["model"], r["threads"]): r for r in report.summarize(records)}
    assert len(rows) == 5
    pixel = rows[("A1", "v3_small.tflite", 1)]
    assert pixel["ok_of"] == "3/4"
    assert pixel["avg_ms"] == pytest.approx(2.0)  # median of 3, 1 and 2 ms
    assert pixel["median_ms"] == pytest.approx(1.9)
    assert pixel["min_ms"] == pytest.approx(1.8)
    assert pixel["init_ms"] == pytest.approx(7.0)
    assert pixel["error"].endswith("benchmark_model crashed")
    assert pixel["device"] == "Google Pixel 7 (A1)"
    assert rows[("A1", "v3_small.tflite", 4)]["avg_ms"] == pytest.approx(1.5)
    assert rows[("B2", "v3_small.tflite", 1)]["avg_ms"] == pytest.approx(2.5)
    assert rows[("A1", "v3_small_int8.tflite", 1)]["precision"] == "int8"


def test_only_failed_records_give_an_empty_row():
    [row] = report.summarize([record(PIXEL, "m.tflite", None, ok=False, error="boom")])
    assert row["ok_of"] == "0/1" and row["avg_ms"] is None and row["error"] == "boom"


def test_pareto_front_on_hand_points():
    points = [(1.0, 70.0), (2.0, 75.0), (3.0, 74.0), (1.5, 69.0), (4.0, 80.0), (4.0, 79.0)]
    assert report.pareto_front(points) == [0, 1, 4]


def test_command_line_writes_table_csv_and_plots(records, tmp_path):
    # One converter report joined by sha256 (its file has another name), one by file name,
    # one without an accuracy.
    renamed = tmp_path / "renamed_copy.tflite"
    renamed.write_bytes(b"model bytes")
    records.append(record(PIXEL, "fast.tflite", 800.0,
                          sha=hashlib.sha256(b"model bytes").hexdigest()))
    results = write_jsonl(tmp_path / "results.jsonl", records)
    with open(results, "a") as handle:
        handle.write("{not json\n")  # a torn last line from an interrupted run
    reports = [
        {"model": "mobilenet_v3_small", "precision": "fp32", "tflite_path": str(renamed),
         "tflite_accuracy": 0.674},
        {"model": "mobilenet_v3_small", "precision": "int8",
         "tflite_path": "/elsewhere/v3_small_int8.tflite", "tflite_accuracy": 0.66},
        {"model": "unknown", "precision": "fp32", "tflite_path": "/x/v3_small.tflite",
         "tflite_accuracy": None},
    ]
    first = tmp_path / "report_a.json"
    first.write_text(json.dumps(reports[0]))
    second = tmp_path / "report_b.json"
    second.write_text(json.dumps(reports[1:]))
    out = tmp_path / "out"
    status = report_cli.main([str(results), "--out", str(out), "--accuracy-report", str(first),
                          "--accuracy-report", str(second)])
    assert status == report_cli.EXIT_OK

    with open(out / "latency.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6
    pixel = [r for r in rows if r["model"] == "v3_small.tflite" and r["threads"] == "1"
             and r["device"].endswith("(A1)")]
    assert pixel[0]["avg ms"] == "2.000" and pixel[0]["ok/records"] == "3/4"

    markdown = (out / "latency.md").read_text()
    table = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 6
    assert "my\\|model.tflite" in markdown  # a pipe in a name does not break the table
    for name in ("latency.png", "pareto.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size[0] > 300

    joined = report.join_accuracy(report.summarize(records),
                                  report.load_accuracy_reports([first, second]))
    assert sorted((row["model"], entry["precision"]) for row, entry in joined) == [
        ("fast.tflite", "fp32"), ("v3_small_int8.tflite", "int8")]


def test_command_line_errors(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert report_cli.main([str(empty), "--out", str(tmp_path / "o")]) == report_cli.EXIT_NO_DATA
    assert report_cli.main([str(tmp_path / "missing.jsonl")]) == report_cli.EXIT_USAGE
    assert not Path(tmp_path / "o" / "latency.md").exists()


def profiled(avg_us, conv_ms, ops_scale=1.0):
    """An ok record with an op profile: CONV_2D, DEPTHWISE_CONV_2D and SOFTMAX nodes."""
    entry = record(PIXEL, "v3_small.tflite", avg_us)
    entry["op_profile"] = {
        "nodes": 3,
        "node_types": [
            {"node_type": "CONV_2D", "count": 2, "avg_ms": conv_ms, "percent": 60.0},
            {"node_type": "DEPTHWISE_CONV_2D", "count": 1, "avg_ms": 1.0, "percent": 30.0},
            {"node_type": "SOFTMAX", "count": 1, "avg_ms": 0.1, "percent": 10.0},
        ],
        "ops": [
            {"node_type": "CONV_2D", "name": "conv1", "avg_ms": 0.5 * ops_scale, "percent": 20.0},
            {"node_type": "DEPTHWISE_CONV_2D", "name": "dw1", "avg_ms": 1.0, "percent": 30.0},
            {"node_type": "CONV_2D", "name": "conv2", "avg_ms": 2.0 * ops_scale, "percent": 40.0},
            {"node_type": "SOFTMAX", "name": "Identity", "avg_ms": 0.1, "percent": 10.0},
        ],
        "top_ops": [],
    }
    return entry


def test_top_ops_are_medians_over_the_profiled_records(tmp_path):
    records = [profiled(3000.0, 3.0), profiled(3100.0, 5.0, ops_scale=2.0),
               profiled(2900.0, 4.0), record(GALAXY, "v3_small.tflite", 2500.0)]
    [item] = report.op_summary(records, top=2)
    assert item["records"] == 3 and item["title"].startswith("Google Pixel 7 (A1)")
    assert [(r["node_type"], r["count"], r["avg_ms"]) for r in item["node_types"]] == [
        ("CONV_2D", 2, 4.0), ("DEPTHWISE_CONV_2D", 1, 1.0)]
    # conv2: 2, 4 and 2 ms -> median 2; dw1 1 ms every time.
    assert [(r["name"], r["node_type"], r["avg_ms"]) for r in item["ops"]] == [
        ("conv2", "CONV_2D", 2.0), ("dw1", "DEPTHWISE_CONV_2D", 1.0)]

    results = write_jsonl(tmp_path / "r.jsonl", records)
    out = tmp_path / "out"
    assert report_cli.main([str(results), "--out", str(out), "--top-ops", "1"]) == 0
    text = (out / "ops.md").read_text()
    assert "| CONV_2D | 2 | 4.000 | 60.00 |" in text and "DEPTHWISE_CONV_2D" not in text
    assert "| conv2 | CONV_2D | 2.000 | 40.00 |" in text
    # Without profiled records there is no ops.md.
    plain = write_jsonl(tmp_path / "plain.jsonl", [record(PIXEL, "m.tflite", 1000.0)])
    assert report_cli.main([str(plain), "--out", str(tmp_path / "plain")]) == 0
    assert not (tmp_path / "plain" / "ops.md").exists()
