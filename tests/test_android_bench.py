"""Tests of kerasnets.bench: output parsing, and benchmark.py against a stand-in adb and device.

No Android device exists here. tests/fake_adb/adb emulates adb (real message texts, a device
file system in a temp folder, device commands run by /bin/sh so quoting mistakes break) and
tests/fake_adb/benchmark_model prints the real benchmark_model formats. The expected numbers of
the parser tests are read off the samples in ../shared/REFERENCE.md by hand.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from kerasnets.bench import adb as adbmod
from kerasnets.cli import bench as bench_cli
from kerasnets.bench.modelinfo import binary_abi, tflite_precision
from kerasnets.bench.parse import BenchmarkOutputError, parse_benchmark_output

REPO = Path(__file__).resolve().parents[1]
FAKE_ADB = REPO / "tests" / "fake_adb" / "adb"
FAKE_BENCHMARK = REPO / "tests" / "fake_adb" / "benchmark_model"
BENCHMARK_SCRIPT = REPO / "android_bench" / "benchmark.py"

# --- the samples of ../shared/REFERENCE.md, verbatim -------------------------------------------

ALBERT = """STARTING!
Log parameter values verbosely: [0]
Num threads: [1]
Graph: [/data/local/tmp/albert_base.tflite]
#threads used for CPU inference: [1]
Loaded model /data/local/tmp/albert_base.tflite
INFO: Initialized TensorFlow Lite runtime.
The input model file size (MB): 11.983
Initialized session in 20.283ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=2 first=339304 curr=266325 min=266325 max=339304 avg=302814 std=36489
Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=266601 curr=266931 min=265837 max=268116 avg=266473 std=419
Inference timings in us: Init: 20283, First inference: 339304, Warmup (avg): 302814, Inference (avg): 266473
"""

INFO_PERCENTILES = """INFO: count=50 first=2531 curr=2793 min=2605 max=20356 avg=2942.27 std=1190 p5=2647 median=2781 p95=3169
INFO: Inference timings in us: Init: 6395, First inference: 2761, Warmup (avg): 3243.58, Inference (avg): 2942.27
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=39.4531 overall=40.8281
"""

SCIENTIFIC = """Inference timings in us: Init: 17187, First inference: 3512391, Warmup (avg): 3.51239e+06, Inference (avg): 2.95034e+06
Memory footprint delta from the start of the tool (MB): init=4.21094 overall=46.0859
"""

LOGCAT = """07-08 15:34:26.202 I/tflite  ( 5395): Inference timings in us: Init: 458883, First inference: 2732148, Warmup (avg): 2.73215e+06, Inference (avg): 2.71985e+06
07-08 15:34:26.202 I/tflite  ( 5395): Memory footprint delta from the start of the tool (MB): init=286.73 overall=337
"""

OLD = """Peak memory footprint (MB): init=0 overall=12.8672
count=25 first=37601 curr=37528 min=37413 max=37601 avg=37519.8 std=51
Average inference timings in us: Warmup: 76605.9, Init: 9933, no stats: 66767.6
"""

# Issue 13 item 4, verbatim: op profiling adds count= lines that are not the run statistics.
PROFILED_ISSUE_13 = """count=50 first=32891 curr=33978 min=32641 max=34005 avg=33209.4 std=450
Inference timings in us: Init: 855, First inference: 49060, Warmup (avg): 34825.1, Inference (avg): 33209.4
Memory (bytes): count=0
"""

# ../shared/REFERENCE.md's shape of --enable_op_profiling=true output (tables after the summary).
PROFILED = """count=40 first=12110 curr=11873 min=11702 max=12544 avg=11950.2 std=180
Inference timings in us: Init: 4210, First inference: 15032, Warmup (avg): 13001.5, Inference (avg): 11950.2
Profiling Info for Benchmark Initialization:
============================== Run Order ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t ModifyGraphWithDelegate\t            0.000\t    3.902\t    3.902\t 95.100%\t 95.100%\t  1024.000\t        1\tModifyGraphWithDelegate/0
Timings (microseconds): count=1 curr=4103
Memory (bytes): count=0
Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Summary by node type ==============================
\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t[times called]
\t   TfLiteXNNPackDelegate\t        1\t   11.804\t    99.012%\t    99.012%\t     0.000\t        1
\t                 SOFTMAX\t        1\t    0.118\t     0.988%\t   100.000%\t     0.000\t        1
Timings (microseconds): count=40 first=11921 curr=11850 min=11690 max=12530 avg=11940.7 std=178
Memory (bytes): count=0
"""


def test_parse_albert_sample_integers_and_warmup_line():
    result = parse_benchmark_output(ALBERT)
    assert result["init_us"] == 20283
    assert result["first_us"] == 339304
    assert result["warmup_avg_us"] == 302814
    assert result["warmup_count"] == 2
    assert result["avg_us"] == 266473
    # min/max/std/count come from the timed runs' line, not the warm-up line.
    assert (result["count"], result["min_us"], result["max_us"], result["std_us"]) == (
        50, 265837, 268116, 419)
    assert result["median_us"] is None and result["p5_us"] is None
    assert result["memory_init_mb"] is None and result["memory_kind"] is None


def test_parse_info_prefix_decimals_percentiles_and_memory():
    result = parse_benchmark_output(INFO_PERCENTILES)
    assert result["avg_us"] == pytest.approx(2942.27)
    assert result["warmup_avg_us"] == pytest.approx(3243.58)
    assert (result["p5_us"], result["median_us"], result["p95_us"]) == (2647, 2781, 3169)
    assert (result["min_us"], result["max_us"], result["std_us"]) == (2605, 20356, 1190)
    assert result["memory_init_mb"] == pytest.approx(39.4531)
    assert result["memory_overall_mb"] == pytest.approx(40.8281)
    assert result["memory_kind"] == "delta"


def test_parse_scientific_notation():
    result = parse_benchmark_output(SCIENTIFIC)
    assert result["avg_us"] == pytest.approx(2.95034e6)
    assert result["warmup_avg_us"] == pytest.approx(3.51239e6)
    assert result["first_us"] == 3512391
    assert result["memory_overall_mb"] == pytest.approx(46.0859)
    assert result["count"] is None and result["std_us"] is None


def test_parse_logcat_prefix():
    result = parse_benchmark_output(LOGCAT)
    assert result["init_us"] == 458883
    assert result["avg_us"] == pytest.approx(2.71985e6)
    assert (result["memory_init_mb"], result["memory_overall_mb"]) == (286.73, 337)
    # The same lines in logcat's threadtime format, with the run statistics before them.
    lines = ["count=25 first=2 curr=3 min=1 max=4 avg=2.7e+06 std=9"] + [
        line.split("): ", 1)[1] for line in LOGCAT.splitlines()]
    threadtime = "".join(f"07-08 15:34:26.202  5395  5395 I tflite  : {line}\n"
                         for line in lines)
    result = parse_benchmark_output(threadtime)
    assert (result["count"], result["min_us"], result["max_us"], result["std_us"]) == (25, 1, 4, 9)
    assert result["avg_us"] == pytest.approx(2.71985e6)


def test_parse_old_format():
    result = parse_benchmark_output(OLD)
    assert result["avg_us"] == pytest.approx(66767.6)  # "no stats" is the timed average
    assert result["warmup_avg_us"] == pytest.approx(76605.9)
    assert result["init_us"] == 9933
    assert (result["count"], result["min_us"], result["max_us"], result["std_us"]) == (
        25, 37413, 37601, 51)
    assert (result["memory_init_mb"], result["memory_overall_mb"]) == (0, pytest.approx(12.8672))
    assert result["memory_kind"] == "peak"


def test_parse_all_same_stat_line_and_peak_monitor():
    text = (
        "count=1 curr=4100\n"
        "count=3 curr=4000(all same)\n"
        "Inference timings in us: Init: 10, First inference: 4100, Warmup (avg): 4100, "
        "Inference (avg): 4000\n"
        "Overall peak memory footprint (MB) via periodic monitoring: 55.5\n"
    )
    result = parse_benchmark_output(text)
    assert (result["count"], result["min_us"], result["max_us"], result["std_us"]) == (
        3, 4000, 4000, 0)
    assert result["warmup_count"] == 1
    assert result["memory_peak_mb"] == 55.5


def test_parse_run_statistics_are_not_the_profilers_count_lines():
    result = parse_benchmark_output(PROFILED_ISSUE_13)
    assert (result["count"], result["min_us"], result["max_us"], result["std_us"]) == (
        50, 32641, 34005, 450)
    assert result["avg_us"] == pytest.approx(33209.4)
    assert result["op_profile"] is None  # count= lines alone are no profile


@pytest.mark.parametrize("order", ["after", "before"])
def test_parse_op_profiling_tables_before_or_after_the_summary(order):
    lines = PROFILED.splitlines()
    if order == "before":
        summary = lines.pop(1)
        lines.append(summary)
    result = parse_benchmark_output("\n".join(lines) + "\n")
    # The stand-alone statistics line, not the profiler's "Timings (microseconds)" lines.
    assert (result["count"], result["min_us"], result["max_us"], result["std_us"]) == (
        40, 11702, 12544, 180)
    assert result["avg_us"] == pytest.approx(11950.2)
    profile = result["op_profile"]
    assert [(r["node_type"], r["count"], r["avg_ms"], r["percent"], r["times_called"])
            for r in profile["node_types"]] == [
        ("TfLiteXNNPackDelegate", 1, 11.804, 99.012, 1), ("SOFTMAX", 1, 0.118, 0.988, 1)]
    # The initialization section's Run Order (ModifyGraphWithDelegate) is not the runs' profile.
    assert profile["ops"] == [] and profile["top_ops"] == []


@pytest.mark.parametrize("text", [
    "",
    "STARTING!\nLoaded model /data/local/tmp/m.tflite\n",
    ALBERT.rsplit("Inference timings", 1)[0],
    "Inference timings in us: Init: 10, First inference: 20\n",
])
def test_parse_rejects_incomplete_output(text):
    with pytest.raises(BenchmarkOutputError):
        parse_benchmark_output(text)


def test_parse_devices_long_format_with_daemon_banner():
    text = (
        "* daemon not running; starting now at tcp:5037\n"
        "* daemon started successfully\n"
        "List of devices attached\n"
        "emulator-5554          device product:sdk_gphone64_arm64 model:sdk_gphone64_arm64 "
        "device:emu64a transport_id:1\n"
        "R58M12345AB            unauthorized usb:1-1 transport_id:2\n"
        "0123456789ABCDEF       no permissions (user in plugdev group; are your udev rules "
        "wrong?); see [http://developer.android.com/tools/device.html] usb:1-2 transport_id:3\n"
        "\n"
    )
    entries = adbmod.parse_devices(text)
    assert [(e.serial, e.state) for e in entries] == [
        ("emulator-5554", "device"),
        ("R58M12345AB", "unauthorized"),
        ("0123456789ABCDEF", "no permissions"),
    ]
    assert entries[0].attributes["model"] == "sdk_gphone64_arm64"
    assert entries[0].attributes["transport_id"] == "1"


def test_device_problem_recognises_adb_error_texts():
    assert adbmod.device_problem("adb: device unauthorized.\nThis adb server's") == "unauthorized"
    assert adbmod.device_problem("error: device offline\n") == "offline"
    assert adbmod.device_problem(
        "adb: error: failed to get feature set: device 'X1' not found\n") == "not found"
    # The tool's own failure is not a device problem.
    assert adbmod.device_problem("ERROR: Failed to mmap model /data/x.tflite\n") is None


# --- model files ----------------------------------------------------------------------------


def write_tflite(path, values=8, tensor_type=schema.TensorType.FLOAT32, weight_type=None):
    """Writes a one-op (ADD) TFLite model with the LiteRT flatbuffer schema; returns its path."""
    weight_type = tensor_type if weight_type is None else weight_type
    dtype = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.INT8: np.int8,
             schema.TensorType.FLOAT16: np.float16}
    model = schema.ModelT()
    model.version = 3
    weights = schema.BufferT()
    weights.data = np.frombuffer(np.arange(values, dtype=dtype[weight_type]).tobytes(), np.uint8)
    model.buffers = [schema.BufferT(), weights, schema.BufferT()]

    def tensor(name, buffer, kind):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, np.array([1, values], np.int32), kind, buffer
        return t

    subgraph = schema.SubGraphT()
    subgraph.tensors = [tensor("x", 0, tensor_type), tensor("w", 1, weight_type),
                        tensor("y", 2, tensor_type)]
    subgraph.inputs, subgraph.outputs = [0], [2]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    op.builtinOptionsType = schema.BuiltinOptions.AddOptions
    op.builtinOptions = schema.AddOptionsT()
    subgraph.operators = [op]
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.ADD
    code.version = 1
    model.operatorCodes, model.subgraphs = [code], [subgraph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    Path(path).write_bytes(builder.Output())
    return Path(path)


def test_tiny_model_is_a_model_the_litert_runtime_runs(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(write_tflite(tmp_path / "m.tflite")))
    interpreter.allocate_tensors()
    interpreter.set_tensor(0, np.ones((1, 8), np.float32))
    interpreter.invoke()
    np.testing.assert_array_equal(interpreter.get_tensor(2)[0], np.arange(8) + 1)


def test_precision_from_tensor_types(tmp_path):
    assert tflite_precision(write_tflite(tmp_path / "f.tflite")) == "float32"
    assert tflite_precision(write_tflite(
        tmp_path / "q.tflite", tensor_type=schema.TensorType.INT8)) == "int8"
    assert tflite_precision(write_tflite(
        tmp_path / "d.tflite", weight_type=schema.TensorType.INT8)) == "dynamic_int8"
    assert tflite_precision(write_tflite(
        tmp_path / "h.tflite", weight_type=schema.TensorType.FLOAT16)) == "float16"
    (tmp_path / "junk.tflite").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="TFL3"):
        tflite_precision(tmp_path / "junk.tflite")
    # The tag, then a root offset past the end of the file.
    (tmp_path / "torn.tflite").write_bytes(b"\xff\xff\x00\x00TFL3" + bytes(8))
    with pytest.raises(ValueError, match="not a readable TFLite flatbuffer"):
        tflite_precision(tmp_path / "torn.tflite")


def elf_header(machine, elf_class):
    """Returns the first 64 bytes of a little-endian ELF executable for ``machine``."""
    header = bytearray(64)
    header[0:4] = b"\x7fELF"
    header[4], header[5], header[6] = elf_class, 1, 1
    header[16:18] = (2).to_bytes(2, "little")  # ET_EXEC
    header[18:20] = machine.to_bytes(2, "little")
    return bytes(header)


def test_binary_abi_from_elf_header(tmp_path):
    for machine, elf_class, abi in ((183, 2, "arm64-v8a"), (40, 1, "armeabi-v7a"),
                                    (62, 2, "x86_64"), (3, 1, "x86")):
        path = tmp_path / abi
        path.write_bytes(elf_header(machine, elf_class))
        assert binary_abi(path) == abi
    assert binary_abi(FAKE_BENCHMARK) is None  # a #! script
    (tmp_path / "text").write_text("hello")
    with pytest.raises(ValueError, match="not an executable"):
        binary_abi(tmp_path / "text")


# --- the stand-in adb -----------------------------------------------------------------------


class FakeAdb:
    """A configured stand-in adb in ``tmp_path``: config file, wrapper executable, logs."""

    def __init__(self, tmp_path, monkeypatch, devices):
        self.dir = tmp_path / "fake_adb"
        self.state_dir = self.dir / "state"
        self.bin_dir = self.dir / "bin"
        self.bin_dir.mkdir(parents=True)
        self.config = self.dir / "config.json"
        self.config.write_text(json.dumps({"state_dir": str(self.state_dir),
                                           "devices": devices}))
        # A wrapper, so the stand-in runs with this interpreter whatever python3 is on PATH.
        self.executable = self.bin_dir / "adb"
        self.executable.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "{FAKE_ADB}" "$@"\n')
        self.executable.chmod(0o755)
        monkeypatch.setenv("FAKE_ADB_CONFIG", str(self.config))
        monkeypatch.delenv("ADB", raising=False)
        monkeypatch.delenv("ANDROID_SERIAL", raising=False)

    def calls(self):
        path = self.state_dir / "adb_calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def bench_calls(self, event="end"):
        path = self.state_dir / "benchmark_calls.jsonl"
        if not path.exists():
            return []
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        return [line for line in lines if line["event"] == event]

    def device_tmp(self, serial):
        return self.state_dir / "devices" / serial / "data" / "local" / "tmp"


def running(pid, wait=3.0):
    """Returns whether process ``pid`` is still running (not gone, not a zombie) after ``wait`` s."""
    deadline = time.monotonic() + wait
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        if state in ("Z", "X"):
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)


def device(serial, state="device", **extra):
    return {"serial": serial, "state": state, **extra}


@pytest.fixture
def models(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    return [write_tflite(folder / "net_a.tflite", values=8),
            write_tflite(folder / "net_b.tflite", values=16)]


@pytest.fixture
def binary(tmp_path):
    path = tmp_path / "benchmark_model"
    shutil.copy(FAKE_BENCHMARK, path)
    return path


def read_records(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def run_main(fake, out, models, *args, binary=None):
    argv = [str(m) for m in models] + ["--out", str(out), "--adb", str(fake.executable),
                                       "--min-secs", "0", "--warmup-min-secs", "0"]
    if binary is not None:
        argv += ["--benchmark-binary", str(binary)]
    return bench_cli.main(argv + list(args))


def test_one_device_every_combination_matches_what_the_device_printed(
        tmp_path, monkeypatch, models, binary):
    fake = FakeAdb(tmp_path, monkeypatch, [device("R5CT1", bench={"format": "info"})])
    out = tmp_path / "results.jsonl"
    status = run_main(fake, out, models[:1], "--threads", "1,4", "--delegate", "cpu",
                      "--delegate", "xnnpack", "--runs", "20", "--warmup", "2", "--extra-args",
                      "--enable_op_profiling=true --report_peak_memory_footprint=true",
                      binary=binary)
    assert status == 0
    records = read_records(out)
    assert [(r["model_name"], r["threads"], r["delegate"]) for r in records] == [
        ("net_a.tflite", t, d) for t in (1, 4) for d in ("cpu", "xnnpack")]
    assert all(r["ok"] and r["error"] is None for r in records)

    printed = fake.bench_calls()
    assert len(printed) == len(records)
    model = models[0]
    for record, call in zip(records, printed):
        assert record["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
        assert record["model_bytes"] == model.stat().st_size
        assert record["precision"] == "float32"
        device_info = record["device"]
        assert (device_info["serial"], device_info["manufacturer"], device_info["model"],
                device_info["soc"], device_info["android_version"], device_info["abi"]) == (
            "R5CT1", "Google", "Pixel 7", "GS201", "14", "arm64-v8a")
        # The device saw the flags the record claims.
        argv = call["argv"]
        assert f"--num_threads={record['threads']}" in argv
        assert "--num_runs=20" in argv and "--warmup_runs=2" in argv
        assert "--enable_op_profiling=true" in argv  # --extra-args, passed as given
        assert ("--use_xnnpack=false" if record["delegate"] == "cpu"
                else "--use_xnnpack=true") in argv
        assert call["printed"]["delegate"] == record["delegate"]
        # And the record holds what the device printed.
        timed, warm = call["printed"]["timed"], call["printed"]["warmup"]
        assert record["count"] == timed["count"] == 20
        assert record["avg_us"] == pytest.approx(timed["avg"], rel=1e-5)
        assert (record["min_us"], record["max_us"], record["std_us"]) == (
            timed["min"], timed["max"], timed["std"])
        assert (record["p5_us"], record["median_us"], record["p95_us"]) == (
            timed["p5"], timed["median"], timed["p95"])
        assert record["warmup_avg_us"] == pytest.approx(warm["avg"], rel=1e-5)
        assert record["first_us"] == warm["first"]
        assert record["init_us"] == call["printed"]["init_us"]
        assert record["memory_overall_mb"] == pytest.approx(call["printed"]["memory_overall_mb"])
        assert record["memory_peak_mb"] == pytest.approx(record["memory_overall_mb"] + 0.5)
        assert record["command"].startswith("adb -s R5CT1 shell ")
    # 4 threads is faster than 1 on the stand-in, and the records show it.
    one = [r["avg_us"] for r in records if r["threads"] == 1]
    four = [r["avg_us"] for r in records if r["threads"] == 4]
    assert max(four) < min(one)
    # The per-run folder is gone; the binary stays for the next run.
    tmp = fake.device_tmp("R5CT1") / "kerasnets_bench"
    assert sorted(p.name for p in tmp.iterdir()) == ["benchmark_model"]


def test_every_output_format_end_to_end(tmp_path, monkeypatch, models, binary):
    # 2.4 s per run makes the stand-in print its averages in scientific notation.
    slow = {"latency_us": 2.4e6}
    fake = FakeAdb(tmp_path, monkeypatch, [
        device("PLAIN", bench={"format": "plain", **slow}),
        device("LOGCAT", bench={"format": "logcat", **slow}),
        device("OLD", bench={"format": "old", **slow}),
        device("LITERAL", bench={"format": "literal", "literal": LOGCAT}),
    ])
    out = tmp_path / "r.jsonl"
    assert run_main(fake, out, models[:1], "--runs", "3", "--all-devices", binary=binary) == 0
    records = {r["device"]["serial"]: r for r in read_records(out)}
    calls = {c["serial"]: c for c in fake.bench_calls()}
    assert sorted(records) == ["LITERAL", "LOGCAT", "OLD", "PLAIN"]
    for serial in ("PLAIN", "LOGCAT", "OLD"):
        record, printed = records[serial], calls[serial]["printed"]
        assert record["avg_us"] == pytest.approx(printed["timed"]["avg"], rel=1e-5)
        assert record["avg_us"] > 1e6
        assert record["min_us"] == printed["timed"]["min"]
        assert record["count"] == 3
        assert record["median_us"] is None  # these formats print no percentiles
    assert records["PLAIN"]["memory_overall_mb"] is None
    for serial, kind in (("LOGCAT", "delta"), ("OLD", "peak")):
        assert records[serial]["memory_kind"] == kind
        assert records[serial]["memory_overall_mb"] == pytest.approx(
            calls[serial]["printed"]["memory_overall_mb"])
    # The REFERENCE.md logcat sample, printed verbatim by the "device".
    assert records["LITERAL"]["avg_us"] == pytest.approx(2.71985e6)
    assert records["LITERAL"]["memory_overall_mb"] == 337


def test_op_profiling_output_in_every_format_and_order_end_to_end(tmp_path, monkeypatch, models,
                                                                   binary):
    devices = {f"{fmt.upper()}_{order.upper()}": {"format": fmt, "profiling_order": order}
               for fmt in ("plain", "info", "logcat") for order in ("after", "before")}
    fake = FakeAdb(tmp_path, monkeypatch, [device(serial, bench=bench)
                                           for serial, bench in devices.items()])
    out = tmp_path / "r.jsonl"
    assert run_main(fake, out, models[:1], "--all-devices", "--runs", "7", "--delegate", "cpu",
                    "--delegate", "xnnpack", "--extra-args=--enable_op_profiling=true",
                    binary=binary) == 0
    records = read_records(out)
    calls = {(c["serial"], c["printed"]["delegate"]): c["printed"] for c in fake.bench_calls()}
    assert len(records) == len(calls) == 2 * len(devices)
    for record in records:
        printed = calls[(record["device"]["serial"], record["delegate"])]
        timed, profile = printed["timed"], printed["profile"]
        assert (record["count"], record["min_us"], record["max_us"], record["std_us"]) == (
            timed["count"], timed["min"], timed["max"], timed["std"])
        parsed = record["op_profile"]
        assert [(r["node_type"], r["count"]) for r in parsed["node_types"]] == [
            (r["node_type"], r["count"]) for r in profile["node_types"]]
        for got, want in zip(parsed["node_types"], profile["node_types"]):
            assert got["avg_ms"] == pytest.approx(want["avg_ms"], abs=1e-3)
            assert got["percent"] == pytest.approx(want["percent"], abs=1e-3)
        assert [(r["node_type"], r["name"], r["avg_ms"]) for r in parsed["ops"]] == [
            (r["node_type"], r["name"], r["avg_ms"]) for r in profile["ops"]]
        assert [r["name"] for r in parsed["top_ops"]] == profile["top_ops"]
        assert parsed["nodes"] == len(profile["ops"])


def test_file_names_are_quoted_for_the_device_shell(tmp_path, monkeypatch, binary):
    fake = FakeAdb(tmp_path, monkeypatch, [device("S1")])
    weird = write_tflite(tmp_path / "my model;rm -rf x.tflite")
    # Canaries that an unquoted `rm -rf x.tflite` would delete on the "device".
    root = fake.state_dir / "devices" / "S1"
    canaries = [root / "x.tflite", fake.device_tmp("S1") / "x.tflite"]
    for canary in canaries:
        canary.parent.mkdir(parents=True, exist_ok=True)
        canary.write_text("still here")
    out = tmp_path / "r.jsonl"
    assert run_main(fake, out, [weird], "--keep-on-device", binary=binary) == 0
    [record] = read_records(out)
    assert record["ok"]
    [start] = fake.bench_calls("start")
    graph = [a for a in start["argv"] if a.startswith("--graph=")]
    assert len(graph) == 1 and graph[0].endswith("/0/my model;rm -rf x.tflite")
    assert graph[0].startswith("--graph=/data/local/tmp/kerasnets_bench/run-")
    assert start["graph_sha256"] == hashlib.sha256(weird.read_bytes()).hexdigest()
    assert all(canary.read_text() == "still here" for canary in canaries)
    # --keep-on-device left the model where it ran.
    kept = list((fake.device_tmp("S1") / "kerasnets_bench").glob("run-*/0/my model;rm -rf x.tflite"))
    assert len(kept) == 1


def test_binary_is_pushed_once_and_again_only_when_it_changes(
        tmp_path, monkeypatch, models, binary):
    fake = FakeAdb(tmp_path, monkeypatch, [device("S1")])
    out = tmp_path / "r.jsonl"

    def binary_pushes():
        return [c for c in fake.calls()
                if "push" in c["argv"] and c["argv"][-1].endswith("/benchmark_model")]

    assert run_main(fake, out, models[:1], binary=binary) == 0
    assert run_main(fake, out, models[:1], binary=binary) == 0
    assert len(binary_pushes()) == 1
    binary.write_text(binary.read_text() + "\n# rebuilt\n")
    assert run_main(fake, out, models[:1], binary=binary) == 0
    assert len(binary_pushes()) == 2
    pushed = fake.device_tmp("S1") / "kerasnets_bench" / "benchmark_model"
    assert pushed.read_bytes() == binary.read_bytes()
    assert all(r["ok"] for r in read_records(out))


def test_all_devices_runs_ready_devices_in_parallel(tmp_path, monkeypatch, models, binary, caplog):
    slow = {"sleep_s": 0.8}
    fake = FakeAdb(tmp_path, monkeypatch, [
        device("A1", bench=slow),
        device("B2", bench=slow, props={"ro.product.manufacturer": "samsung",
                                        "ro.product.model": "SM-S911B",
                                        "ro.board.platform": "kalama"}),
        device("C3", state="unauthorized"),
        device("D4", state="offline"),
    ])
    out = tmp_path / "r.jsonl"
    assert run_main(fake, out, models[:1], "--all-devices", binary=binary) == 0
    records = read_records(out)
    assert sorted(r["device"]["serial"] for r in records) == ["A1", "B2"]
    assert all(r["ok"] for r in records)
    assert {r["device"]["model"] for r in records} == {"Pixel 7", "SM-S911B"}
    assert "C3 is unauthorized" in caplog.text and "D4 is offline" in caplog.text
    # Each run sleeps 0.8 s on its device; run one device after the other, the two devices'
    # runs could not overlap.
    spans = {}
    for call in fake.bench_calls("start") + fake.bench_calls("end"):
        low, high = spans.get(call["serial"], (call["time"], call["time"]))
        spans[call["serial"]] = (min(low, call["time"]), max(high, call["time"]))
    assert spans["A1"][0] < spans["B2"][1] and spans["B2"][0] < spans["A1"][1]


@pytest.mark.parametrize("state, words", [
    ("unauthorized", "is unauthorized"),
    ("offline", "is offline"),
])
def test_unusable_device_gives_failed_records(tmp_path, monkeypatch, models, binary, caplog,
                                              state, words):
    fake = FakeAdb(tmp_path, monkeypatch, [device("OK1"), device("BAD9", state=state)])
    out = tmp_path / "r.jsonl"
    status = run_main(fake, out, models, "--serial", "BAD9", binary=binary)
    assert status == bench_cli.EXIT_RUN_FAILED
    records = read_records(out)
    assert len(records) == 2 and not any(r["ok"] for r in records)
    for record, model in zip(records, models):
        assert record["device"]["serial"] == "BAD9"
        assert f"model {model.name} on device BAD9 {words}" in record["error"]
    assert f"model {models[0].name} on device BAD9 {words}" in caplog.text


def test_device_not_attached(tmp_path, monkeypatch, models, binary):
    fake = FakeAdb(tmp_path, monkeypatch, [device("OK1")])
    out = tmp_path / "r.jsonl"
    assert run_main(fake, out, models[:1], "--serial", "GONE", binary=binary) == 1
    [record] = read_records(out)
    assert "device GONE is not attached" in record["error"]


def test_several_devices_without_serial_is_a_setup_error(tmp_path, monkeypatch, models, binary,
                                                         caplog):
    fake = FakeAdb(tmp_path, monkeypatch, [device("A1"), device("B2")])
    out = tmp_path / "r.jsonl"
    assert run_main(fake, out, models, binary=binary) == bench_cli.EXIT_SETUP_FAILED
    assert "several devices attached (A1 (device), B2 (device))" in caplog.text
    records = read_records(out)
    assert len(records) == 2 and not any(r["ok"] for r in records)
    assert all("--serial" in r["error"] for r in records)
    assert not fake.bench_calls("start")


def test_no_device_is_a_setup_error(tmp_path, monkeypatch, models, binary, caplog):
    fake = FakeAdb(tmp_path, monkeypatch, [])
    out = tmp_path / "r.jsonl"
    assert run_main(fake, out, models[:1], binary=binary) == bench_cli.EXIT_SETUP_FAILED
    assert "no Android device attached" in caplog.text
    [record] = read_records(out)
    assert record["ok"] is False and "no Android device attached" in record["error"]


def test_adb_missing(tmp_path, monkeypatch, models, binary, caplog):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("ADB", raising=False)
    out = tmp_path / "r.jsonl"
    argv = [str(models[0]), "--out", str(out), "--benchmark-binary", str(binary),
            "--serial", "S1"]
    assert bench_cli.main(argv) == bench_cli.EXIT_SETUP_FAILED
    assert "adb not found on PATH" in caplog.text
    [record] = read_records(out)
    assert record["device"]["serial"] == "S1"
    assert "model net_a.tflite on device S1: adb not found" in record["error"]
    monkeypatch.setenv("ADB", str(tmp_path / "no-such-adb"))
    assert bench_cli.main(argv) == bench_cli.EXIT_SETUP_FAILED
    assert "$ADB=" in read_records(out)[-1]["error"]


def test_push_failure_fails_that_model_only(tmp_path, monkeypatch, models, binary):
    fake = FakeAdb(tmp_path, monkeypatch, [device("S1", fail={"push": ["net_b"]})])
    out = tmp_path / "r.jsonl"
    assert run_main(fake, out, models, "--threads", "1,2", binary=binary) == 1
    records = read_records(out)
    assert [(r["model_name"], r["ok"]) for r in records] == [
        ("net_a.tflite", True), ("net_a.tflite", True),
        ("net_b.tflite", False), ("net_b.tflite", False)]
    assert "No space left on device" in records[-1]["error"]
    assert "model net_b.tflite on device S1: adb push" in records[-1]["error"]


def test_binary_missing_wrong_abi_or_not_executable(tmp_path, monkeypatch, models, binary,
                                                    caplog):
    fake = FakeAdb(tmp_path, monkeypatch, [device("S1")])
    out = tmp_path / "r.jsonl"
    # Bad input, refused before anything runs: exit 2, one line, no record.
    assert run_main(fake, out, models[:1], binary=tmp_path / "nope") == 2
    assert "--benchmark-binary" in caplog.text and "does not exist" in caplog.text
    (tmp_path / "notes.txt").write_text("not a program")
    assert run_main(fake, out, models[:1], binary=tmp_path / "notes.txt") == 2
    assert "not an executable" in caplog.text
    assert not fake.calls() and not out.exists()

    x86 = tmp_path / "x86_64_benchmark_model"
    x86.write_bytes(elf_header(62, 2))
    assert run_main(fake, out, models[:1], binary=x86) == 1
    error = read_records(out)[-1]["error"]
    assert "is built for x86_64, but the device runs arm64-v8a" in error
    assert not [c for c in fake.calls() if "push" in c["argv"]]  # nothing was pushed


@pytest.mark.parametrize("chmod, words", [
    ("error", "cannot make /data/local/tmp/kerasnets_bench/benchmark_model executable"),
    ("silent", "exit status 126"),
])
def test_binary_that_cannot_be_made_executable(tmp_path, monkeypatch, models, binary,
                                               chmod, words):
    fake = FakeAdb(tmp_path, monkeypatch, [device("S1", fail={"chmod": chmod})])
    binary.chmod(0o644)  # adb push keeps the mode, so only chmod on the device could fix it
    out = tmp_path / "r.jsonl"
    assert run_main(fake, out, models[:1], binary=binary) == 1
    [record] = read_records(out)
    assert words in record["error"] and "device S1" in record["error"]
    assert not fake.bench_calls("start")


def test_crash_failure_and_garbage_keep_earlier_records(tmp_path, monkeypatch, binary):
    names = ["good.tflite", "crash.tflite", "fail.tflite", "garbage.tflite"]
    files = [write_tflite(tmp_path / name) for name in names]
    fake = FakeAdb(tmp_path, monkeypatch, [device(
        "S1", bench={"modes": {"crash": "crash", "fail": "fail", "garbage": "garbage"}})])
    out = tmp_path / "r.jsonl"
    assert run_main(fake, out, files, binary=binary) == 1
    records = {r["model_name"]: r for r in read_records(out)}
    assert records["good.tflite"]["ok"]
    crash = records["crash.tflite"]
    assert not crash["ok"] and crash["exit_status"] == 139
    assert "crashed (exit status 139: signal 11, SIGSEGV)" in crash["error"]
    fail = records["fail.tflite"]
    assert fail["exit_status"] == 1
    assert "exited with status 1" in fail["error"] and "failed to invoke" in fail["error"]
    garbage = records["garbage.tflite"]
    assert garbage["exit_status"] == 0
    assert "cannot parse the output: no 'Inference timings in us' line" in garbage["error"]
    assert "Initialized session" in garbage["output_tail"]


def test_unsupported_delegate_and_bad_graph(tmp_path, monkeypatch, models, binary):
    fake = FakeAdb(tmp_path, monkeypatch, [device(
        "S1", bench={"unsupported_delegates": ["gpu"]})])
    # A TFLite identifier, then a root offset past the end: only the device's verifier tells.
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\xff\xff\x00\x00TFL3" + bytes(8))
    out = tmp_path / "r.jsonl"
    status = run_main(fake, out, [models[0], junk], "--delegate", "gpu", "--delegate", "nnapi",
                      binary=binary)
    assert status == 1
    records = read_records(out)
    by = {(r["model_name"], r["delegate"]): r for r in records}
    assert "Failed to apply GPU delegate" in by[("net_a.tflite", "gpu")]["error"]
    assert by[("net_a.tflite", "nnapi")]["ok"]
    assert by[("junk.tflite", "nnapi")]["precision"] is None
    assert "Failed to mmap model" in by[("junk.tflite", "nnapi")]["error"]
    [nnapi] = [c for c in fake.bench_calls() if c["printed"]["delegate"] == "nnapi"]
    assert "--use_nnapi=true" in nnapi["argv"]


def test_timeout_kills_the_device_process(tmp_path, monkeypatch, models, binary):
    fake = FakeAdb(tmp_path, monkeypatch, [device("S1", bench={"mode": "hang"})])
    out = tmp_path / "r.jsonl"
    start = time.monotonic()
    assert run_main(fake, out, models[:1], "--timeout", "2", binary=binary) == 1
    assert time.monotonic() - start < 30
    [record] = read_records(out)
    assert "model net_a.tflite on device S1: benchmark_model timed out after 2 s" in record["error"]
    assert "Running benchmark for at least" in record["output_tail"]  # what it printed so far
    [hung] = fake.bench_calls("start")
    assert not running(hung["pid"])


def test_device_dropping_offline_mid_run_keeps_earlier_records(tmp_path, monkeypatch, models,
                                                                binary):
    # Commands before the first run: getprop, mkdir+stat, push, chmod, --help, push model.
    fake = FakeAdb(tmp_path, monkeypatch, [device("S1", fail={"offline_after": 8})])
    out = tmp_path / "r.jsonl"
    assert run_main(fake, out, models, "--threads", "1,2,4", binary=binary) == 1
    records = read_records(out)
    assert len(records) == 6
    assert [r["ok"] for r in records] == [True, True, False, False, False, False]
    assert all("device S1 is offline" in r["error"] for r in records[2:])


def test_usage_errors_exit_2(tmp_path, models, binary, caplog):
    assert bench_cli.main([str(tmp_path / "missing.tflite"), "--out", str(tmp_path / "o.jsonl"),
                           "--benchmark-binary", str(binary)]) == bench_cli.EXIT_USAGE
    assert "missing.tflite' does not exist" in caplog.text
    with pytest.raises(SystemExit) as exit_info:
        bench_cli.main([str(models[0]), "--out", str(tmp_path / "o.jsonl")])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        bench_cli.main([str(models[0]), "--out", str(tmp_path / "o.jsonl"),
                        "--benchmark-binary", str(binary), "--threads", "0,2"])
    assert exit_info.value.code == 2


def test_command_line_with_adb_on_path_and_help(tmp_path, monkeypatch, models, binary):
    fake = FakeAdb(tmp_path, monkeypatch, [device("S1", bench={"format": "logcat"})])
    env = {**os.environ, "PATH": f"{fake.bin_dir}{os.pathsep}{os.environ['PATH']}"}
    out = tmp_path / "r.jsonl"
    process = subprocess.run(
        [sys.executable, str(BENCHMARK_SCRIPT), str(models[0]), "--out", str(out),
         "--benchmark-binary", str(binary), "--min-secs", "0", "--warmup-min-secs", "0"],
        env=env, capture_output=True, text=True, timeout=60)
    assert process.returncode == 0, process.stderr
    [record] = read_records(out)
    assert record["ok"] and record["device"]["serial"] == "S1"
    help_text = bench_cli.build_parser().format_help()
    assert "exit status" in help_text and "--all-devices" in help_text


def test_record_is_on_disk_before_the_next_run_ends(tmp_path, monkeypatch, models, binary):
    fake = FakeAdb(tmp_path, monkeypatch, [device("S1", bench={"modes": {"net_b": "hang"}})])
    out = tmp_path / "r.jsonl"
    argv = [str(BENCHMARK_SCRIPT), *map(str, models), "--out", str(out),
            "--adb", str(fake.executable), "--benchmark-binary", str(binary),
            "--min-secs", "0", "--warmup-min-secs", "0"]
    # Ctrl-C in a terminal: a process inherits an ignored SIGINT (some test runners' workers
    # ignore it), so the script runs with Python's own SIGINT handler put back, as in a shell.
    launcher = ("import runpy, signal, sys; signal.signal(signal.SIGINT, "
                "signal.default_int_handler); sys.argv = sys.argv[1:]; "
                "runpy.run_path(sys.argv[0], run_name='__main__')")
    process = subprocess.Popen([sys.executable, "-c", launcher, *argv],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 40
        while not fake.bench_calls("start")[1:] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fake.bench_calls("start")[1:], "the second run never started"
        # net_a's record is already on disk while net_b hangs.
        [record] = read_records(out)
        assert record["ok"] and record["model_name"] == "net_a.tflite"
        process.send_signal(signal.SIGINT)
        # communicate() drains stderr while waiting (a full pipe would block the script); the
        # limit is generous because CI runs this beside TensorFlow-heavy tests.
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == bench_cli.EXIT_INTERRUPTED
    finally:
        if process.poll() is None:
            process.kill()
    assert "interrupted; 1 record(s)" in stderr
    assert len(read_records(out)) == 1
    assert not running(fake.bench_calls("start")[1]["pid"])
