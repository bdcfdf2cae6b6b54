"""Benchmark .tflite models on Android devices with TFLite's benchmark_model over adb, or on this
host with LiteRT; one record per (device, model, threads, delegate).

For every device the steps are: set up (``getprop``, the binary installed, see
``device.DeviceSession``), push each model, run benchmark_model once per (threads, delegate),
parse its output (``measurement``), write the record (``DeviceRecords``). Every combination gets
exactly one record, ok or not; each is appended as soon as its run ends, so an interruption or a
later failure loses nothing already measured. ``run_devices`` runs devices in parallel, one
thread each; ``run_local`` runs each combination in a fresh LiteRT process on this host. The
command line is ``kerasnets.cli.bench``.
"""

import dataclasses
import json
import logging
import shlex
import subprocess
import threading
from pathlib import Path

from kerasnets.bench import adb as adbmod
from kerasnets.bench.device import (
    DeviceSession,
    SetupError,
    benchmark_argv,
    check_binary_abi,
    describe_exit,
    tail,
)
from kerasnets.bench.modelinfo import file_sha256
from kerasnets.bench.parse import BenchmarkOutputError, parse_benchmark_output
from kerasnets.bench.records import RecordWriter, finish_record, make_record

logger = logging.getLogger("kerasnets.bench")


@dataclasses.dataclass
class Options:
    """Everything a worker needs to know about the requested runs.

    ``models`` are ``modelinfo.model_info`` dicts; ``min_secs``/``warmup_min_secs`` None
    leave the tool's defaults; ``timeout`` bounds each run and each push, in seconds.
    """

    models: list[dict]
    threads: list[int]
    delegates: list[str]
    runs: int
    warmup: int
    min_secs: float | None = None
    warmup_min_secs: float | None = None
    timeout: float = 600.0
    extra_args: list[str] = dataclasses.field(default_factory=list)
    binary: Path | None = None
    keep_on_device: bool = False
    run_id: str = ""

    def combinations(self) -> list[tuple[dict, int, str]]:
        """Returns every (model info, threads, delegate) in run order."""
        return [
            (model, threads, delegate)
            for model in self.models
            for threads in self.threads
            for delegate in self.delegates
        ]

    def new_record(self, target: str, device: dict, model: dict, threads: int, delegate: str,
                   tool: dict | None) -> dict:
        """Returns an unmeasured record of one combination (``records.make_record``)."""
        return make_record(self.run_id, self.runs, self.warmup, target, device, model, threads,
                           delegate, tool)


def measurement(result: adbmod.Result) -> tuple[dict, str | None]:
    """Returns (record fields, problem) of a finished benchmark_model run.

    The fields are the parsed timings (``parse.parse_benchmark_output``) and the exit status;
    on failure ``problem`` says why (exit status and error lines, or what is missing in the
    output) and the fields hold the output's last lines.
    """
    fields = {"exit_status": result.returncode}
    if result.returncode != 0:
        fields["output_tail"] = tail(result.output)
        return fields, describe_exit(result.returncode, result.output)
    try:
        fields.update(parse_benchmark_output(result.output))
    except BenchmarkOutputError as error:
        fields["output_tail"] = tail(result.output)
        return fields, f"cannot parse the output: {error}"
    return fields, None


class DeviceRecords:
    """The records of one device: each combination written exactly once, ok or failed."""

    def __init__(self, options: Options, writer: RecordWriter, serial: str):
        self.options = options
        self.writer = writer
        self.serial = serial
        self.device = adbmod.device_info(serial, {})
        self.tool = {"name": "benchmark_model", "path": None, "sha256": None}
        self._done = set()

    def new(self, model: dict, threads: int, delegate: str) -> dict:
        """Returns an unmeasured record of one combination on this device."""
        return self.options.new_record("adb", self.device, model, threads, delegate, self.tool)

    def problem(self, error: Exception | str) -> str:
        """Returns ``error`` as a problem sentence that starts with the device."""
        text = str(error)
        return text if text.startswith(f"device {self.serial}") else f"device {self.serial}: {text}"

    def write(self, record: dict, problem: str | None = None) -> None:
        """Writes ``record``, failed with ``problem`` when given."""
        self._done.add((record["model_path"], record["threads"], record["delegate"]))
        self.writer.write(finish_record(record, problem))

    def fail_model(self, model: dict, problem: str) -> None:
        """Writes a failed record for each (threads, delegate) of ``model``."""
        for threads in self.options.threads:
            for delegate in self.options.delegates:
                self.write(self.new(model, threads, delegate), problem)

    def fail_remaining(self, problem: str) -> None:
        """Writes a failed record for every combination not yet written."""
        for model, threads, delegate in self.options.combinations():
            if (model["model_path"], threads, delegate) not in self._done:
                self.write(self.new(model, threads, delegate), problem)


class DeviceWorker:
    """Benchmarks every (model, threads, delegate) on one device: set up, push, run, record."""

    def __init__(self, adb: adbmod.Adb, serial: str, state: str, options: Options,
                 writer: RecordWriter, stop: threading.Event):
        self.serial = serial
        self.state = state
        self.options = options
        self.stop = stop
        self.session = DeviceSession(adb, serial, options.run_id, options.timeout)
        self.records = DeviceRecords(options, writer, serial)

    def run(self) -> None:
        """Runs everything on this device; every combination gets a record, ok or not."""
        try:
            self._setup()
            for index, model in enumerate(self.options.models):
                if self.stop.is_set():
                    return
                self._measure_model(index, model)
        except (adbmod.AdbError, SetupError) as error:
            if not self.stop.is_set():
                self.records.fail_remaining(self.records.problem(error))
        except Exception as error:  # a bug must not leave this device's runs unrecorded
            logger.exception("device %s: unexpected error", self.serial)
            self.records.fail_remaining(self.records.problem(f"internal error: {error!r}"))
        finally:
            self.session.cleanup(self.options.keep_on_device, self.stop.is_set())

    def _setup(self) -> None:
        if self.state != "device":
            raise SetupError(adbmod.describe_state(self.serial, self.state))
        self.records.device = self.session.device_info()
        binary = self.options.binary
        if not binary.is_file():
            raise SetupError(
                f"device {self.serial}: benchmark binary {str(binary)!r} does not exist"
            )
        check_binary_abi(binary, self.records.device)
        sha256 = file_sha256(binary)
        self.records.tool = {"name": "benchmark_model", "path": str(binary), "sha256": sha256}
        self.session.install_binary(binary, sha256, len(self.options.models))

    def _measure_model(self, index: int, model: dict) -> None:
        try:
            remote = self.session.push_model(index, model)
        except adbmod.DeviceUnavailableError:
            raise
        except adbmod.AdbError as error:
            self.records.fail_model(model, self.records.problem(error))
            return
        for threads in self.options.threads:
            for delegate in self.options.delegates:
                if self.stop.is_set():
                    return
                self._measure_one(model, remote, threads, delegate)

    def _measure_one(self, model: dict, remote: str, threads: int, delegate: str) -> None:
        options = self.options
        record = self.records.new(model, threads, delegate)
        argv = benchmark_argv(remote, threads, delegate, options.runs, options.warmup,
                              options.min_secs, options.warmup_min_secs, options.extra_args)
        command = self.session.command(argv)
        record["command"] = shlex.join(["adb", "-s", self.serial, "shell", command])
        try:
            result = self.session.run(command)
        except adbmod.AdbTimeoutError as error:
            record["output_tail"] = tail(error.output)
            self.records.write(record, self.records.problem(
                f"benchmark_model timed out after {options.timeout:g} s"))
            return
        except adbmod.DeviceUnavailableError:
            raise
        except adbmod.AdbError as error:  # this run's adb failed, not the device: go on
            self.records.write(record, self.records.problem(error))
            return
        if self.stop.is_set():
            return
        fields, problem = measurement(result)
        record.update(fields)
        self.records.write(record, None if problem is None else self.records.problem(problem))


def select_devices(entries: list[adbmod.DeviceEntry], serials: list[str],
                   all_devices: bool) -> list[tuple[str, str]]:
    """Returns [(serial, state)] to benchmark from ``adb devices`` entries.

    Raises SetupError when no device is attached, or several are and neither ``serials`` nor
    ``all_devices`` says which.
    """
    states = {entry.serial: entry.state for entry in entries}
    listing = ", ".join(f"{e.serial} ({e.state})" for e in entries) or "none"
    if serials:
        return [(serial, states.get(serial, "not found")) for serial in dict.fromkeys(serials)]
    if all_devices:
        for entry in entries:
            if entry.state != "device":
                logger.warning("%s; skipped by --all-devices",
                               adbmod.describe_state(entry.serial, entry.state))
        ready = [(e.serial, e.state) for e in entries if e.state == "device"]
        if not ready:
            raise SetupError(f"no device is ready for --all-devices (attached: {listing})")
        return ready
    if not entries:
        raise SetupError(
            "no Android device attached ('adb devices' lists none): connect one with USB "
            "debugging on, or use --target local"
        )
    if len(entries) > 1:
        raise SetupError(
            f"several devices attached ({listing}): pass --serial SERIAL (repeatable) or "
            "--all-devices"
        )
    return [(entries[0].serial, entries[0].state)]


def run_devices(adb: adbmod.Adb, devices: list[tuple[str, str]], options: Options,
                writer: RecordWriter, stop: threading.Event) -> None:
    """Runs one DeviceWorker thread per (serial, state) and waits for all of them."""
    workers = [DeviceWorker(adb, serial, state, options, writer, stop) for serial, state in devices]
    threads = [
        threading.Thread(target=worker.run, name=f"device-{worker.serial}", daemon=True)
        for worker in workers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        # A short join timeout keeps the main thread responsive to Ctrl-C.
        while thread.is_alive():
            thread.join(0.2)


def run_local(options: Options, writer: RecordWriter, stop: threading.Event) -> None:
    """Benchmarks every combination on this host with LiteRT and writes the records.

    Each combination runs in a fresh ``python -m kerasnets.bench.local`` process, as
    benchmark_model runs in a fresh process per invocation: the peak-RSS memory delta then
    means the same thing, and one run's thread pools and allocations do not carry over.
    """
    from kerasnets.bench import local  # imported here: only --target local needs the runtime

    device = local.host_device_info()
    tool = {"name": "ai_edge_litert.interpreter.Interpreter", "path": None, "sha256": None}
    for model, threads, delegate in options.combinations():
        if stop.is_set():
            return
        record = options.new_record("local", device, model, threads, delegate, tool)
        try:
            local.check_delegate(delegate)
        except ValueError as error:
            writer.write(finish_record(record, f"this host: {error}"))
            continue
        seconds = {name: value for name, value in (("min_secs", options.min_secs),
                                                   ("warmup_min_secs", options.warmup_min_secs))
                   if value is not None}  # None: benchmark_model's defaults, as on a device
        argv = local.command_line(model_path=model["model_path"], threads=threads,
                                  delegate=delegate, runs=options.runs, warmup=options.warmup,
                                  **seconds)
        record["command"] = shlex.join(argv)
        try:
            process = subprocess.run(argv, capture_output=True, text=True,
                                     timeout=options.timeout)
        except subprocess.TimeoutExpired as error:
            record["output_tail"] = tail(error.stderr or "")
            writer.write(finish_record(record, f"this host: timed out after {options.timeout:g} s"))
            continue
        record["exit_status"] = process.returncode
        if process.returncode != 0:
            record["output_tail"] = tail(process.stderr)
            last = tail(process.stderr, 1) or f"exit status {process.returncode}"
            writer.write(finish_record(record, f"this host: the LiteRT run failed: {last}"))
            continue
        record.update(json.loads(process.stdout.strip().splitlines()[-1]))
        writer.write(finish_record(record))


def write_setup_failure(options: Options, writer: RecordWriter, serials: list[str],
                        error: str) -> None:
    """Writes an ok: false record with ``error`` for every combination on each serial."""
    for serial in serials or [None]:
        device = adbmod.device_info(serial, {})
        for model, threads, delegate in options.combinations():
            record = options.new_record("adb", device, model, threads, delegate, None)
            problem = error if serial is None else f"device {serial}: {error}"
            writer.write(finish_record(record, problem))
