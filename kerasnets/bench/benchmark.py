"""Benchmark .tflite models on Android devices with TFLite's benchmark_model, over adb.

    python android_bench/benchmark.py MODEL.tflite [MODEL ...] --out results.jsonl \\
        --benchmark-binary path/to/android_arm64_benchmark_model [--serial S | --all-devices]

For every device, the benchmark binary is pushed once to /data/local/tmp/kerasnets_bench/
(again only when its size or sha256 changed), the models go to a per-run folder
/data/local/tmp/kerasnets_bench/run-<run id>/ (removed at the end unless --keep-on-device),
and benchmark_model runs once per (model, threads, delegate). One JSON line per run is
appended to --out as soon as the run ends (flushed and fsynced), so an interruption or a later
failure loses nothing already measured. With --all-devices, devices run in parallel, one
worker thread each. ``--target local`` writes the same records from this host with LiteRT.
"""

import argparse
import dataclasses
import json
import logging
import os
import secrets
import shlex
import signal
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

from kerasnets.bench import adb as adbmod
from kerasnets.bench.modelinfo import binary_abi, file_sha256, model_info
from kerasnets.bench.parse import BenchmarkOutputError, empty_result, parse_benchmark_output

logger = logging.getLogger("kerasnets.bench")

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_SETUP_FAILED = 3
EXIT_INTERRUPTED = 130

DEVICE_WORKDIR = "/data/local/tmp/kerasnets_bench"
DEVICE_BINARY = f"{DEVICE_WORKDIR}/benchmark_model"

# benchmark_model flags for each --delegate. "cpu" turns off the XNNPACK delegate that the
# TFLite runtime would otherwise apply by default; "gpu" and "nnapi" leave XNNPACK at its
# default for the ops the delegate does not take.
DELEGATE_FLAGS = {
    "cpu": ["--use_xnnpack=false"],
    "xnnpack": ["--use_xnnpack=true"],
    "gpu": ["--use_gpu=true"],
    "nnapi": ["--use_nnapi=true"],
}

RECORD_SCHEMA_VERSION = 1
OUTPUT_TAIL_LINES = 25


class SetupError(RuntimeError):
    """A device (or the whole run) cannot be benchmarked; the message says why."""


@dataclasses.dataclass
class Options:
    """Everything a worker needs to know about the requested runs."""

    models: list
    threads: list
    delegates: list
    runs: int
    warmup: int
    min_secs: float = None
    warmup_min_secs: float = None
    timeout: float = 600.0
    extra_args: list = dataclasses.field(default_factory=list)
    binary: Path = None
    keep_on_device: bool = False
    run_id: str = ""

    def combinations(self):
        """Returns every (model info, threads, delegate) in run order."""
        return [
            (model, threads, delegate)
            for model in self.models
            for threads in self.threads
            for delegate in self.delegates
        ]


class RecordWriter:
    """Appends records to a JSONL file, one line each, under a lock, flushed and fsynced."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.written = 0
        self.failed = 0

    def write(self, record):
        """Appends ``record`` and logs it; failed records are logged as errors."""
        line = json.dumps(record, sort_keys=False) + "\n"
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self.written += 1
            self.failed += 0 if record["ok"] else 1
        settings = f"threads {record['threads']}, delegate {record['delegate']}"
        if record["ok"]:
            runs = f" over {record['count']} runs" if record["count"] is not None else ""
            logger.info("device %s, model %s, %s: avg %.1f us%s", record["device"]["serial"],
                        record["model_name"], settings, record["avg_us"], runs)
        else:
            logger.error("%s (%s)", record["error"], settings)


def new_run_id():
    """Returns a run id: UTC time, process id and a random suffix."""
    now = datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{os.getpid()}-{secrets.token_hex(2)}"


def make_record(options, target, device, model, threads, delegate, tool):
    """Returns a record with every field present, not yet measured (ok False, no error)."""
    return {
        "schema_version": RECORD_SCHEMA_VERSION,
        "timestamp": None,
        "run_id": options.run_id,
        "target": target,
        "device": device,
        **model,
        "threads": threads,
        "delegate": delegate,
        "runs": options.runs,
        "warmup": options.warmup,
        "tool": tool,
        **empty_result(),
        "ok": False,
        "error": None,
        "exit_status": None,
        "command": None,
        "output_tail": None,
    }


def finish_record(record, problem=None):
    """Returns ``record`` stamped with the time; ok unless ``problem`` says what failed.

    The error names the model, then the problem, which names the device when there is one
    ("model m.tflite on device S: benchmark_model crashed ...").
    """
    record["timestamp"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    record["ok"] = problem is None
    if problem is not None:
        joint = " on " if problem.startswith(("device ", "this host")) else ": "
        record["error"] = f"model {record['model_name']}{joint}{problem}"
    return record


def tail(output, lines=OUTPUT_TAIL_LINES):
    """Returns the last ``lines`` non-empty lines of ``output``."""
    kept = [line for line in output.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def describe_exit(status, output):
    """Returns why benchmark_model failed, from its exit status and its error lines."""
    if status == 126:
        reason = "could not be executed (exit status 126: not executable, or built for another ABI)"
    elif status == 127:
        reason = "was not found on the device (exit status 127)"
    elif status > 128:
        try:
            name = signal.Signals(status - 128).name
        except ValueError:
            name = "unknown signal"
        reason = f"crashed (exit status {status}: signal {status - 128}, {name})"
    else:
        reason = f"exited with status {status}"
    errors = [
        line.strip()
        for line in output.splitlines()
        if "ERROR" in line or "failed" in line.lower() or "not found" in line
    ]
    detail = "; ".join(errors[-3:]) if errors else tail(output, 2).replace("\n", "; ")
    return f"benchmark_model {reason}" + (f": {detail}" if detail else "")


def benchmark_argv(model_remote, threads, delegate, options):
    """Returns the device argv of one benchmark_model run."""
    argv = [
        DEVICE_BINARY,
        f"--graph={model_remote}",
        f"--num_threads={threads}",
        f"--num_runs={options.runs}",
        f"--warmup_runs={options.warmup}",
    ]
    if options.min_secs is not None:
        argv.append(f"--min_secs={options.min_secs:g}")
    if options.warmup_min_secs is not None:
        argv.append(f"--warmup_min_secs={options.warmup_min_secs:g}")
    return argv + DELEGATE_FLAGS[delegate] + list(options.extra_args)


class DeviceWorker:
    """Benchmarks every (model, threads, delegate) on one device and writes the records."""

    def __init__(self, adb, serial, state, options, writer, stop):
        self.adb = adb
        self.serial = serial
        self.state = state
        self.options = options
        self.writer = writer
        self.stop = stop
        self.device = adbmod.device_info(serial, {})
        self.run_dir = f"{DEVICE_WORKDIR}/run-{options.run_id}"
        self.pidfile = f"{self.run_dir}/benchmark.pid"
        self.tool = {"name": "benchmark_model", "path": None, "sha256": None}
        self._done = set()
        self._created_run_dir = False

    def run(self):
        """Runs everything on this device; every combination gets a record, ok or not."""
        try:
            self._setup()
            for index, model in enumerate(self.options.models):
                self._benchmark_model(index, model)
        except (adbmod.AdbError, SetupError) as error:
            self._fail_remaining(self._device_problem(error))
        except Exception as error:  # a bug must not leave this device's runs unrecorded
            logger.exception("device %s: unexpected error", self.serial)
            self._fail_remaining(self._device_problem(f"internal error: {error!r}"))
        finally:
            self._cleanup()

    def _device_problem(self, error):
        """Returns ``error`` as a problem sentence that starts with the device."""
        text = str(error)
        return text if text.startswith(f"device {self.serial}") else f"device {self.serial}: {text}"

    def _record(self, model, threads, delegate):
        return make_record(
            self.options, "adb", self.device, model, threads, delegate, self.tool
        )

    def _write(self, record, problem=None):
        self._done.add((record["model_path"], record["threads"], record["delegate"]))
        self.writer.write(finish_record(record, problem))

    def _fail_remaining(self, error):
        """Writes an ok: false record with ``error`` for every combination not yet written."""
        if self.stop.is_set():
            return
        for model, threads, delegate in self.options.combinations():
            if (model["model_path"], threads, delegate) not in self._done:
                self._write(self._record(model, threads, delegate), error)

    def _shell(self, command, timeout=120.0):
        return self.adb.shell(self.serial, command, timeout)

    def _setup(self):
        if self.state != "device":
            raise SetupError(adbmod.describe_state(self.serial, self.state))
        self.device = adbmod.device_info(self.serial, self.adb.getprop(self.serial))
        binary = self.options.binary
        if not binary.is_file():
            raise SetupError(
                f"device {self.serial}: benchmark binary {str(binary)!r} does not exist"
            )
        try:
            abi = binary_abi(binary)
        except ValueError as error:
            raise SetupError(f"device {self.serial}: {error}") from None
        if abi is not None and abi not in self.device["abilist"]:
            raise SetupError(
                f"device {self.serial}: benchmark binary {str(binary)!r} is built for {abi}, "
                f"but the device runs {', '.join(self.device['abilist']) or 'an unknown ABI'}"
            )
        self.tool = {"name": "benchmark_model", "path": str(binary), "sha256": file_sha256(binary)}
        model_dirs = [f"{self.run_dir}/{i}" for i in range(len(self.options.models))]
        quoted = shlex.quote(DEVICE_BINARY)
        # One round trip: create the run's folders, then print the installed binary's size
        # and sha256 (nothing when there is none yet).
        result = self._shell(
            f"{shlex.join(['mkdir', '-p', *model_dirs])} || exit 1; "
            f"stat -c %s {quoted} 2>/dev/null && sha256sum {quoted} 2>/dev/null; exit 0"
        )
        if result.returncode != 0:
            raise SetupError(
                f"device {self.serial}: cannot create {self.run_dir}: {tail(result.output, 3)}"
            )
        self._created_run_dir = True
        installed = result.output.split()[:2]
        if installed == [str(binary.stat().st_size), self.tool["sha256"]]:
            logger.info("device %s: %s is up to date, not pushed", self.serial, DEVICE_BINARY)
        else:
            logger.info("device %s: pushing %s to %s", self.serial, binary, DEVICE_BINARY)
            self.adb.push(self.serial, binary, DEVICE_BINARY, self.options.timeout)
        # chmod even when up to date: an earlier run may have pushed it and failed here.
        result = self._shell(f"chmod 755 {quoted}")
        if result.returncode != 0:
            raise SetupError(
                f"device {self.serial}: cannot make {DEVICE_BINARY} executable: "
                f"{tail(result.output, 3)}"
            )
        self._check_binary_runs()

    def _check_binary_runs(self):
        """Raises SetupError when the installed binary cannot run on this device at all."""
        # benchmark_model --help prints its usage and exits 1; 126/127 or a signal mean the
        # binary cannot be executed here (not executable, wrong ABI, missing loader).
        result = self._shell(f"{shlex.quote(DEVICE_BINARY)} --help", timeout=60.0)
        if result.returncode in (126, 127) or result.returncode > 128:
            raise SetupError(
                f"device {self.serial}: {DEVICE_BINARY} cannot run on this device: "
                + describe_exit(result.returncode, result.output)
            )

    def _benchmark_model(self, index, model):
        remote = f"{self.run_dir}/{index}/{model['model_name']}"
        try:
            self.adb.push(self.serial, model["model_path"], remote, self.options.timeout)
        except adbmod.DeviceUnavailableError:
            raise
        except adbmod.AdbError as error:
            for threads in self.options.threads:
                for delegate in self.options.delegates:
                    self._write(self._record(model, threads, delegate), self._device_problem(error))
            return
        for threads in self.options.threads:
            for delegate in self.options.delegates:
                if self.stop.is_set():
                    return
                self._run_one(model, remote, threads, delegate)

    def _run_one(self, model, remote, threads, delegate):
        record = self._record(model, threads, delegate)
        argv = benchmark_argv(remote, threads, delegate, self.options)
        command = f"echo $$ > {shlex.quote(self.pidfile)} && exec {shlex.join(argv)}"
        record["command"] = shlex.join(["adb", "-s", self.serial, "shell", command])
        where = f"device {self.serial}"
        try:
            result = self._shell(command, timeout=self.options.timeout)
        except adbmod.AdbTimeoutError as error:
            self._kill_on_device()
            record["output_tail"] = tail(error.output)
            self._write(record, f"{where}: benchmark_model timed out after {self.options.timeout:g} s")
            return
        if self.stop.is_set():
            return
        record["exit_status"] = result.returncode
        if result.returncode != 0:
            record["output_tail"] = tail(result.output)
            self._write(record, f"{where}: {describe_exit(result.returncode, result.output)}")
            return
        try:
            record.update(parse_benchmark_output(result.output))
        except BenchmarkOutputError as error:
            record["output_tail"] = tail(result.output)
            self._write(record, f"{where}: cannot parse the output: {error}")
            return
        self._write(record)

    def _kill_on_device(self):
        """Kills the benchmark_model process that ran past its time, if still alive."""
        try:
            self._shell(f'kill -9 "$(cat {shlex.quote(self.pidfile)})" 2>/dev/null', 30.0)
        except adbmod.AdbError as error:
            logger.warning("device %s: could not stop the timed-out run: %s", self.serial, error)

    def _cleanup(self):
        if not self._created_run_dir:
            return
        if self.stop.is_set():
            logger.warning("device %s: interrupted; %s left on the device", self.serial, self.run_dir)
            return
        if self.options.keep_on_device:
            logger.info("device %s: models kept in %s", self.serial, self.run_dir)
            return
        try:
            self._shell(shlex.join(["rm", "-rf", self.run_dir]))
        except adbmod.AdbError as error:
            logger.warning("device %s: could not remove %s: %s", self.serial, self.run_dir, error)


def select_devices(entries, serials, all_devices):
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


def run_devices(adb, devices, options, writer, stop):
    """Runs one DeviceWorker thread per device and waits for all of them."""
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


def run_local(options, writer, stop):
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
        record = make_record(options, "local", device, model, threads, delegate, tool)
        try:
            local.check_delegate(delegate)
        except ValueError as error:
            writer.write(finish_record(record, f"this host: {error}"))
            continue
        argv = local.command_line(
            model["model_path"], threads, delegate, options.runs, options.warmup,
            local.DEFAULT_MIN_SECS if options.min_secs is None else options.min_secs,
            local.DEFAULT_WARMUP_MIN_SECS if options.warmup_min_secs is None
            else options.warmup_min_secs,
        )
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


def write_setup_failure(options, writer, serials, error):
    """Writes an ok: false record with ``error`` for every combination on each serial."""
    for serial in serials or [None]:
        device = adbmod.device_info(serial, {})
        for model, threads, delegate in options.combinations():
            record = make_record(options, "adb", device, model, threads, delegate, None)
            problem = error if serial is None else f"device {serial}: {error}"
            writer.write(finish_record(record, problem))


def _thread_list(text):
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(
            f"--threads={text!r}: expected positive integers separated by commas, e.g. 1,4"
        )
    return values


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of seconds > 0")
    return value


def build_parser(prog="kerasnets bench"):
    """Returns the argparse parser of this command line."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "exit status:\n"
            "  0    every record is ok\n"
            "  1    at least one record failed (ok: false; its error says why)\n"
            "  2    command-line error (nothing run)\n"
            "  3    nothing could start: adb missing, no device, several devices and no\n"
            "       --serial (ok: false records written)\n"
            "  130  interrupted (records already written are kept)\n"
        ),
    )
    parser.add_argument("models", nargs="+", type=Path, metavar="MODEL.tflite")
    parser.add_argument("--out", required=True, type=Path, help="JSONL file to append to")
    parser.add_argument("--target", choices=("adb", "local"), default="adb",
                        help="adb: Android devices (default); local: this host with LiteRT")
    parser.add_argument("--serial", action="append", default=[],
                        help="device serial from 'adb devices' (repeatable)")
    parser.add_argument("--all-devices", action="store_true",
                        help="every device in state 'device', in parallel")
    parser.add_argument("--benchmark-binary", type=Path,
                        help="benchmark_model built for the device ABI (e.g. "
                             "android_aarch64_benchmark_model); required for --target adb")
    parser.add_argument("--threads", type=_thread_list, default=[1],
                        help="comma-separated thread counts (default 1)")
    parser.add_argument("--delegate", action="append", choices=sorted(DELEGATE_FLAGS),
                        help="repeatable; default xnnpack (cpu = builtin kernels, XNNPACK off)")
    parser.add_argument("--runs", type=int, default=50,
                        help="minimum timed runs, --num_runs (default 50)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="minimum warm-up runs, --warmup_runs (default 1)")
    parser.add_argument("--min-secs", type=float, default=None,
                        help="minimum seconds of timed runs, --min_secs (tool default 1)")
    parser.add_argument("--warmup-min-secs", type=float, default=None,
                        help="minimum seconds of warm-up, --warmup_min_secs (tool default 0.5)")
    parser.add_argument("--timeout", type=_positive_float, default=600.0,
                        help="seconds allowed per benchmark run and per push (default 600)")
    parser.add_argument("--extra-args", default="",
                        help="more benchmark_model flags, one string, e.g. "
                             "'--enable_op_profiling=true'")
    parser.add_argument("--adb", help="adb executable (default: $ADB, else adb on PATH)")
    parser.add_argument("--keep-on-device", action="store_true",
                        help="leave the run's models on the device")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def parse_options(parser, argv):
    """Returns (argparse namespace, Options); exits with status 2 on a usage error."""
    args = parser.parse_args(argv)
    for model in args.models:
        if not model.is_file():
            parser.error(f"model {str(model)!r} does not exist")
    if args.runs < 1 or args.warmup < 0:
        parser.error(f"--runs={args.runs} must be >= 1 and --warmup={args.warmup} >= 0")
    for name in ("min_secs", "warmup_min_secs"):
        value = getattr(args, name)
        if value is not None and value < 0:
            parser.error(f"--{name.replace('_', '-')}={value:g} must be >= 0")
    if args.serial and args.all_devices:
        parser.error("--serial and --all-devices exclude each other")
    if args.target == "adb" and args.benchmark_binary is None:
        parser.error("--target adb needs --benchmark-binary (benchmark_model for the device ABI)")
    if args.target == "local" and (args.serial or args.all_devices or args.benchmark_binary):
        parser.error("--serial, --all-devices and --benchmark-binary apply to --target adb only")
    try:
        extra_args = shlex.split(args.extra_args)
    except ValueError as error:
        parser.error(f"--extra-args={args.extra_args!r}: {error}")
    options = Options(
        models=[model_info(model) for model in args.models],
        threads=args.threads,
        delegates=list(dict.fromkeys(args.delegate or ["xnnpack"])),
        runs=args.runs,
        warmup=args.warmup,
        min_secs=args.min_secs,
        warmup_min_secs=args.warmup_min_secs,
        timeout=args.timeout,
        extra_args=extra_args,
        binary=args.benchmark_binary.resolve() if args.benchmark_binary else None,
        keep_on_device=args.keep_on_device,
        run_id=new_run_id(),
    )
    return args, options


def main(argv=None, prog="kerasnets bench"):
    """Runs the command line; returns the exit status (see --help)."""
    parser = build_parser(prog)
    args, options = parse_options(parser, argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    writer = RecordWriter(args.out)
    stop = threading.Event()
    adb = None
    try:
        if args.target == "local":
            run_local(options, writer, stop)
        else:
            try:
                adb = adbmod.Adb(adbmod.find_adb(args.adb))
                devices = select_devices(adb.devices(), args.serial, args.all_devices)
            except (adbmod.AdbError, SetupError) as error:
                logger.error("%s", error)
                write_setup_failure(options, writer, args.serial, str(error))
                return EXIT_SETUP_FAILED
            logger.info("run %s: %d model(s) on %s", options.run_id, len(options.models),
                        ", ".join(serial for serial, _ in devices))
            run_devices(adb, devices, options, writer, stop)
    except KeyboardInterrupt:
        stop.set()
        if adb is not None:
            adb.kill_all()
        logger.error("interrupted; %d record(s) already in %s are kept", writer.written, args.out)
        return EXIT_INTERRUPTED
    logger.info("%d record(s) appended to %s, %d failed", writer.written, args.out, writer.failed)
    return EXIT_RUN_FAILED if writer.failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
