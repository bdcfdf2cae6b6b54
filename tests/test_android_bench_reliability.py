"""Issue 18 for the benchmark and report commands: nothing lost, nothing blocked, bad input named.

Outputs that cannot be written and inputs that are not what a command reads are refused before
any work, with one line and exit status 2; a records file cut short mid-line takes new records on
a fresh line; faults at every step of a multi-device, multi-model run (push, run, parse, write)
leave every completed measurement in the file, every failed one as an ok: false record with its
reason, and a file that parses; a soak run of 8 stand-in devices x 50 runs loses, duplicates and
interleaves nothing. The devices are tests/fake_adb's stand-ins (see tests/test_android_bench.py).
"""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kerasnets.bench.records import RecordsFileError, RecordWriter, read_records
from kerasnets.cli import bench as bench_cli
from test_android_bench import (  # noqa: F401 (binary and models are fixtures)
    BENCHMARK_SCRIPT,
    FakeAdb,
    binary,
    device,
    models,
    read_records as read_lines,
    run_main,
    write_tflite,
)

REPORT_SCRIPT = Path(BENCHMARK_SCRIPT).parent / "report.py"


def unwritable_folder(tmp_path):
    """Returns a folder where no file can be created: read-only for a normal user; for root,
    who writes through permissions, /sys (no user can create a file there)."""
    if os.geteuid() == 0:
        return Path("/sys")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


def run_script(script, *args, env=None):
    """Returns the finished process of ``python script args`` (stdout and stderr captured)."""
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True,
                          text=True, timeout=120, env=env)


# --- item 1: outputs checked before any work -------------------------------------------------


@pytest.mark.parametrize("case", ["folder", "under a file", "unwritable folder"])
def test_bench_refuses_an_out_it_cannot_write_before_running_anything(
        tmp_path, monkeypatch, models, binary, case):
    fake = FakeAdb(tmp_path, monkeypatch, [device("S1")])
    (tmp_path / "notes.txt").write_text("a file")
    out = {"folder": tmp_path,
           "under a file": tmp_path / "notes.txt" / "r.jsonl",
           "unwritable folder": unwritable_folder(tmp_path) / "r.jsonl"}[case]
    process = run_script(BENCHMARK_SCRIPT, models[0], "--out", out, "--adb", fake.executable,
                         "--benchmark-binary", binary, "--min-secs", "0")
    assert process.returncode == 2, process.stderr
    [line] = process.stderr.strip().splitlines()
    assert "ERROR --out" in line and str(out) in line
    assert not fake.calls()  # not even 'adb devices': nothing ran


@pytest.mark.parametrize("case", ["file", "under a file", "unwritable folder", "output a folder"])
def test_report_refuses_an_out_it_cannot_write_before_writing_anything(tmp_path, case):
    results = tmp_path / "r.jsonl"
    results.write_text(json.dumps({"model_name": "m.tflite", "ok": True, "avg_us": 1000.0,
                                   "threads": 1, "delegate": "xnnpack"}) + "\n")
    out = {"file": results,
           "under a file": results / "report",
           "unwritable folder": unwritable_folder(tmp_path) / "report",
           "output a folder": tmp_path / "out"}[case]
    if case == "output a folder":
        (out / "latency.csv").mkdir(parents=True)
    process = run_script(REPORT_SCRIPT, results, "--out", out)
    assert process.returncode == 2, process.stderr
    [line] = process.stderr.strip().splitlines()
    assert "ERROR" in line and str(out) in line
    assert not (tmp_path / "out" / "latency.md").exists()


# --- item 2: a half-written last line ---------------------------------------------------------


def test_append_after_a_cut_short_line_starts_a_fresh_line(tmp_path, monkeypatch, models,
                                                           binary, caplog):
    fake = FakeAdb(tmp_path, monkeypatch, [device("S1")])
    out = tmp_path / "r.jsonl"
    assert run_main(fake, out, models[:1], binary=binary) == 0
    first = out.read_text()
    out.write_text(first + first[: len(first) // 2])  # a crash in the middle of a record
    assert run_main(fake, out, models[1:], binary=binary) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 3 and lines[1] == first[: len(first) // 2]
    new = json.loads(lines[2])
    assert new["ok"] and new["model_name"] == models[1].name
    # The reader names the broken line and keeps both measurements.
    kept = read_records([out])
    assert [r["model_name"] for r in kept] == [models[0].name, models[1].name]
    assert f"{out}:2: skipped a line that is not JSON" in caplog.text


def test_writer_takes_turns_with_another_process_appending(tmp_path):
    out = tmp_path / "r.jsonl"
    record = {**good_record(), "count": 1, "pad": "x" * 100_000}  # far above a pipe's buffer
    script = ("import json, sys\nfrom kerasnets.bench.records import RecordWriter\n"
              "writer, record = RecordWriter(sys.argv[1]), json.loads(sys.argv[2])\n"
              "for _ in range(20):\n    writer.write(record)\n")
    other = subprocess.Popen([sys.executable, "-c", script, str(out),
                              json.dumps({**record, "by": "other"})], stderr=subprocess.DEVNULL)
    writer = RecordWriter(out)
    for _ in range(20):
        writer.write({**record, "by": "this"})
    assert other.wait(timeout=60) == 0
    assert sorted(r["by"] for r in read_lines(out)) == ["other"] * 20 + ["this"] * 20


# --- item 8: inputs that are not what the command reads ----------------------------------------

CONVERTER_REPORT = {"model": "mobilenet_v3_small", "precision": "int8", "qat": False,
                    "tflite_path": "model_int8.tflite", "tflite_accuracy": 0.61}


def good_record(**fields):
    return {"schema_version": 1, "model_name": "m.tflite", "ok": True, "avg_us": 1000.0,
            "threads": 1, "delegate": "xnnpack", "device": {"serial": "S1"}, **fields}


@pytest.mark.parametrize("case, words", [
    ("report.json as records", ["report.json", "converter report.json", "--accuracy-report"]),
    ("a list line", ["r.jsonl:2:", "a JSON list, not a record object"]),
    ("an object that is no record", ["r.jsonl:1:", "without the record field(s) model_name, ok"]),
    ("a model as records", ["m.tflite", "a TFLite model"]),
    ("malformed accuracy report", ["acc.json:2:", "not JSON"]),
    ("records as accuracy report", ["acc.json", "benchmark records", "records file"]),
    ("accuracy report without tflite_path", ["acc.json", "no 'tflite_path'"]),
])
def test_report_names_a_file_that_is_not_what_it_reads(tmp_path, case, words):
    records = tmp_path / "r.jsonl"
    records.write_text(json.dumps(good_record()) + "\n")
    accuracy = []
    if case == "report.json as records":
        records = tmp_path / "report.json"
        records.write_text(json.dumps(CONVERTER_REPORT, indent=2) + "\n")
    elif case == "a list line":
        records.write_text(json.dumps(good_record()) + "\n[1, 2]\n")
    elif case == "an object that is no record":
        records.write_text(json.dumps({"loss": 0.3}) + "\n")
    elif case == "a model as records":
        records = write_tflite(tmp_path / "m.tflite")
    else:
        acc = tmp_path / "acc.json"
        acc.write_text({"malformed accuracy report": '{\n  "tflite_path": "m.tflite",,\n}\n',
                        "records as accuracy report": json.dumps(good_record()) + "\n"
                        + json.dumps(good_record()) + "\n",
                        "accuracy report without tflite_path": json.dumps({"model": "x"})}[case])
        accuracy = ["--accuracy-report", acc]
    out = tmp_path / "out"
    process = run_script(REPORT_SCRIPT, records, "--out", out, *accuracy)
    assert process.returncode == 2, process.stderr
    [line] = process.stderr.strip().splitlines()
    for word in words:
        assert word in line
    assert not out.exists()  # nothing written, not even the folder


@pytest.mark.parametrize("case, words", [
    ("report.json as model", ["report.json", "a JSON file", "tflite_path"]),
    ("keras model as model", ["m.h5", "a Keras model", "kerasnets convert"]),
    ("report.json as out", ["report.json", "converter report.json", "new file name"]),
    ("model as out", ["out.tflite", "a TFLite model"]),
])
def test_bench_names_a_file_that_is_not_what_it_reads(tmp_path, monkeypatch, models, binary,
                                                       case, words):
    fake = FakeAdb(tmp_path, monkeypatch, [device("S1")])
    model, out = models[0], tmp_path / "r.jsonl"
    report_json = tmp_path / "report.json"
    report_json.write_text(json.dumps(CONVERTER_REPORT, indent=2) + "\n")
    if case == "report.json as model":
        model = report_json
    elif case == "keras model as model":
        model = tmp_path / "m.h5"
        model.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    elif case == "report.json as out":
        out = report_json
    else:
        out = write_tflite(tmp_path / "out.tflite")
    before = out.read_bytes() if out.exists() else None
    process = run_script(BENCHMARK_SCRIPT, model, "--out", out, "--adb", fake.executable,
                         "--benchmark-binary", binary)
    assert process.returncode == 2, process.stderr
    [line] = process.stderr.strip().splitlines()
    for word in words:
        assert word in line
    assert not fake.calls()
    assert (out.read_bytes() if out.exists() else None) == before  # untouched, or never made


def test_reader_keeps_good_records_around_broken_lines_and_refuses_non_records(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(good_record()) + "\n{\"schema_version\": 1, \"mod\n"
                    + json.dumps(good_record(threads=4)) + "\n")
    assert [r["threads"] for r in read_records([path])] == [1, 4]
    path.write_text("not json\nnor this\n")
    with pytest.raises(RecordsFileError, match="no line of it is a JSON record"):
        read_records([path])


# --- item 9: faults at every step, mid multi-device multi-model run -----------------------------

MODEL_NAMES = [f"m{i}" for i in range(6)]


def adb_fault(step, name, kind):
    """A stand-in adb fault for the push or the run of model ``name``."""
    return {"step": step, "match": f"/{name}.tflite", "kind": kind}


# device -> (adb faults, benchmark_model modes, what each failed model's error says). m0 always
# completes; the faults hit the middle and the end of each device's list.
FAULT_PLAN = {
    "PUSH": ([adb_fault("push", "m1", "error"), adb_fault("push", "m2", "hang"),
              adb_fault("push", "m3", "crash"), adb_fault("push", "m4", "sigkill"),
              adb_fault("push", "m5", "enospc")], {},
             {"m1": "remote secure_mkdirs failed", "m2": "adb push timed out after 2 s",
              "m3": "adb push was killed by signal 11 (SIGSEGV)",
              "m4": "adb push was killed by signal 9 (SIGKILL)",
              "m5": "No space left on device"}),
    "RUN": ([adb_fault("run", "m1", "hang"), adb_fault("run", "m2", "crash"),
             adb_fault("run", "m3", "sigkill")],
            {"m4": "crash", "m5": "sigkill"},
            {"m1": "benchmark_model timed out after 2 s",
             "m2": "adb shell was killed by signal 11 (SIGSEGV)",
             "m3": "adb shell was killed by signal 9 (SIGKILL)",
             "m4": "benchmark_model crashed (exit status 139: signal 11, SIGSEGV)",
             "m5": "benchmark_model crashed (exit status 137: signal 9, SIGKILL)"}),
    "DROP": ([adb_fault("run", "m3", "closed")], {},
             {name: "device DROP closed the connection" for name in ("m3", "m4", "m5")}),
    "PARSE": ([], {"m1": "garbage", "m2": "truncated", "m3": "binary", "m4": "fail"},
              {"m1": "cannot parse the output: no 'Inference timings in us' line",
               "m2": "cannot parse the output: the 'Inference timings in us' line has no "
                     "inference average",
               "m3": "cannot parse the output: no 'Inference timings in us' line",
               "m4": "benchmark_model exited with status 1"}),
    "WRITE": ([], {}, {}),  # every run completes; the host's disk is full for a while
}


def test_faults_at_every_step_lose_no_completed_measurement(tmp_path, monkeypatch, binary):
    fake = FakeAdb(tmp_path, monkeypatch, [
        device(serial, faults=faults, bench={"modes": {f"{m}.": mode for m, mode in modes.items()}})
        for serial, (faults, modes, _) in FAULT_PLAN.items()])
    files = [write_tflite(tmp_path / f"{name}.tflite", values=8 + i)
             for i, name in enumerate(MODEL_NAMES)]
    # The disk is full for the 4th to 6th record: each write leaves half a line, then fails.
    calls = {"n": 0}
    real_write_all = RecordWriter._write_all

    def disk_full_for_a_while(fd, data):
        calls["n"] += 1
        if 4 <= calls["n"] <= 6:
            os.write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_all(fd, data)

    monkeypatch.setattr(RecordWriter, "_write_all", staticmethod(disk_full_for_a_while))
    out = tmp_path / "r.jsonl"
    assert run_main(fake, out, files, "--all-devices", "--timeout", "2", binary=binary) == 1

    records = read_lines(out)  # every line whole JSON: the file parses
    got = {(r["device"]["serial"], r["model_name"].split(".")[0]): r for r in records}
    assert len(records) == len(got) == len(FAULT_PLAN) * len(MODEL_NAMES)
    for serial, (_, _, failures) in FAULT_PLAN.items():
        for name in MODEL_NAMES:
            record = got[(serial, name)]
            if name in failures:
                assert not record["ok"] and failures[name] in record["error"], record["error"]
                assert record["error"].startswith(f"model {name}.tflite on device {serial}")
            else:
                assert record["ok"], record["error"]
    # Every run the devices completed is in the file, with the numbers the device printed.
    completed = fake.bench_calls("end")
    assert {(c["serial"], Path(c["argv"][1]).stem) for c in completed} == {
        key for key, r in got.items() if r["ok"]}
    for call in completed:
        record = got[(call["serial"], Path(call["argv"][1]).stem)]
        assert record["avg_us"] == pytest.approx(call["printed"]["timed"]["avg"], rel=1e-5)
    assert calls["n"] > 6  # the writes that failed were made again, and made it


def test_disk_full_to_the_end_logs_every_measurement(tmp_path, monkeypatch, models, binary,
                                                     caplog):
    fake = FakeAdb(tmp_path, monkeypatch, [device("S1")])
    out = tmp_path / "r.jsonl"

    def disk_full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RecordWriter, "_write_all", staticmethod(disk_full))
    assert run_main(fake, out, models, binary=binary) == bench_cli.EXIT_RUN_FAILED
    assert out.read_text() == ""  # nothing torn
    lost = [json.loads(line.split(f"not written to {out}: ", 1)[1])
            for line in caplog.text.splitlines() if "not written to" in line]
    assert sorted(r["model_name"] for r in lost) == sorted(m.name for m in models)
    assert all(r["ok"] and r["avg_us"] > 0 for r in lost)
    assert "2 record(s) could not be written" in caplog.text


def test_sigkill_of_the_command_mid_run_keeps_a_file_that_parses(tmp_path, monkeypatch, binary):
    slow = {"sleep_s": 0.4}
    fake = FakeAdb(tmp_path, monkeypatch, [device("A1", bench=slow), device("B2", bench=slow)])
    files = [write_tflite(tmp_path / f"k{i}.tflite", values=8 + i) for i in range(4)]
    out = tmp_path / "r.jsonl"
    argv = [sys.executable, str(BENCHMARK_SCRIPT), *map(str, files), "--out", str(out),
            "--adb", str(fake.executable), "--benchmark-binary", str(binary), "--all-devices",
            "--min-secs", "0", "--warmup-min-secs", "0"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
                not out.exists() or len(out.read_text().splitlines()) < 3):
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
    killed = read_records([out])
    assert 3 <= len(killed) < 8
    ends = {(c["serial"], Path(c["argv"][1]).name): c for c in fake.bench_calls("end")}
    for record in killed:  # each one a run the device completed, with its numbers
        end = ends[(record["device"]["serial"], record["model_name"])]
        assert record["ok"] and record["avg_us"] == pytest.approx(end["printed"]["timed"]["avg"],
                                                                  rel=1e-5)
    # The same command again: a whole new set appended after what survived.
    time.sleep(1.0)  # the killed run's adb children finish their last device run
    assert run_script(BENCHMARK_SCRIPT, *argv[2:]).returncode == 0
    after = read_records([out])
    assert after[: len(killed)] == killed and len(after) == len(killed) + 8


# --- item 10: soak ------------------------------------------------------------------------------


@pytest.mark.slow
def test_soak_eight_devices_fifty_runs_each(tmp_path, monkeypatch, binary):
    serials = [f"SOAK{i}" for i in range(8)]
    fake = FakeAdb(tmp_path, monkeypatch, [device(serial) for serial in serials])
    files = [write_tflite(tmp_path / f"s{i}.tflite", values=8 + i) for i in range(5)]
    threads = list(range(1, 11))
    out = tmp_path / "r.jsonl"
    start = time.monotonic()
    # Profiled runs make each record a few KB: a write that is not one whole line would show.
    assert run_main(fake, out, files, "--all-devices", "--runs", "5", "--delegate", "cpu",
                    "--threads", ",".join(map(str, threads)),
                    "--extra-args=--enable_op_profiling=true", binary=binary) == 0
    seconds = time.monotonic() - start
    records = read_lines(out)  # each line one whole JSON object
    keys = [(r["device"]["serial"], r["model_name"], r["threads"]) for r in records]
    assert len(keys) == len(set(keys)) == 8 * 50
    assert set(keys) == {(s, f.name, t) for s in serials for f in files for t in threads}
    ends = {(c["serial"], Path(c["argv"][1]).name, c["printed"]["threads"]): c
            for c in fake.bench_calls("end")}
    assert set(ends) == set(keys)
    for record, key in zip(records, keys):
        assert record["avg_us"] == pytest.approx(ends[key]["printed"]["timed"]["avg"], rel=1e-5)
        assert record["op_profile"]["nodes"] == 8
    print(f"soak: 400 records from 8 devices in {seconds:.1f} s")
