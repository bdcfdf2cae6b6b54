"""``kerasnets bench``: latency of .tflite models on Android devices with TFLite's benchmark_model,
over adb, or on this host with LiteRT (``--target local``).

    kerasnets bench MODEL.tflite [MODEL ...] --out results.jsonl \\
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
import json
import logging
import shlex
import threading
from pathlib import Path

from kerasnets.bench import adb as adbmod
from kerasnets.bench.benchmark import (
    Options,
    SetupError,
    run_devices,
    run_local,
    select_devices,
    write_setup_failure,
)
from kerasnets.bench.device import DELEGATE_FLAGS
from kerasnets.bench.modelinfo import binary_abi, model_info
from kerasnets.bench.records import RecordWriter, check_records_output, new_run_id
from kerasnets.cli.common import (
    EXIT_BAD_INPUT, EXIT_ERROR, EXIT_OK, add_verbose_argument, configure_logging,
)

logger = logging.getLogger("kerasnets.bench")

EXIT_RUN_FAILED = EXIT_ERROR
EXIT_USAGE = EXIT_BAD_INPUT
EXIT_SETUP_FAILED = 3
EXIT_INTERRUPTED = 130


def _thread_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(
            f"--threads={text!r}: expected positive integers separated by commas, e.g. 1,4"
        )
    return values


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of seconds > 0")
    return value


def build_parser(prog: str = "kerasnets bench") -> argparse.ArgumentParser:
    """Returns the argparse parser of this command line."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "exit status:\n"
            "  0    every record is ok\n"
            "  1    at least one record failed (ok: false; its error says why)\n"
            "  2    command-line error, an input that is not what it should be, or an --out\n"
            "       that cannot be written (nothing run, nothing written)\n"
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
                        help="more benchmark_model flags, one string after '=', e.g. "
                             "--extra-args='--enable_op_profiling=true --verbose=true'")
    parser.add_argument("--adb", help="adb executable (default: $ADB, else adb on PATH)")
    parser.add_argument("--keep-on-device", action="store_true",
                        help="leave the run's models on the device")
    add_verbose_argument(parser)
    return parser


def parse_arguments(parser: argparse.ArgumentParser,
                    argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Returns (argparse namespace, --extra-args split); exits with status 2 on a usage error."""
    args = parser.parse_args(argv)
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
    return args, extra_args


def check_model(path: Path) -> None:
    """Raises ValueError unless ``path`` is a TFLite model file, saying what it probably is."""
    if not path.is_file():
        raise ValueError(f"model {str(path)!r} does not exist" if not path.exists() else
                         f"model {str(path)!r} is not a file")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head[4:8] == b"TFL3":
        return
    if head.lstrip()[:1] in (b"{", b"["):
        what = ("a JSON file (a converter report.json, or benchmark records?); give the .tflite "
                "file it names (tflite_path)")
    elif head.startswith(b"\x89HDF") or path.suffix in (".h5", ".keras"):
        what = "a Keras model; convert it first: kerasnets convert --weights ... --out DIR"
    else:
        what = "not a TFLite model (no 'TFL3' file identifier at byte 4)"
    raise ValueError(f"model {str(path)!r} is {what}")


def check_files(args: argparse.Namespace) -> None:
    """Raises ValueError, before anything runs, for an input that is not what the command reads
    or an output it cannot write (see ``records.check_records_output``)."""
    for model in args.models:
        check_model(model)
    if args.benchmark_binary is not None:
        binary = args.benchmark_binary
        if not binary.is_file():
            raise ValueError(f"--benchmark-binary {str(binary)!r} does not exist"
                             if not binary.exists() else
                             f"--benchmark-binary {str(binary)!r} is not a file")
        binary_abi(binary)  # raises ValueError for a file that is no executable
    check_records_output(args.out)


def make_options(args: argparse.Namespace, extra_args: list[str]) -> Options:
    """Returns the run's Options from the checked arguments."""
    return Options(
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


def measure(args: argparse.Namespace, options: Options, writer: RecordWriter,
            stop: threading.Event) -> int | None:
    """Runs every measurement; returns EXIT_SETUP_FAILED when no device could start, else None.

    On Ctrl-C the adb commands still running are killed before KeyboardInterrupt goes on.
    """
    if args.target == "local":
        run_local(options, writer, stop)
        return None
    try:
        adb = adbmod.Adb(adbmod.find_adb(args.adb))
        devices = select_devices(adb.devices(), args.serial, args.all_devices)
    except (adbmod.AdbError, SetupError) as error:
        logger.error("%s", error)
        write_setup_failure(options, writer, args.serial, str(error))
        return EXIT_SETUP_FAILED
    logger.info("run %s: %d model(s) on %s", options.run_id, len(options.models),
                ", ".join(serial for serial, _ in devices))
    try:
        run_devices(adb, devices, options, writer, stop)
    except KeyboardInterrupt:
        stop.set()
        adb.kill_all()
        raise
    return None


def all_written(writer: RecordWriter) -> bool:
    """Returns whether every record reached the file; logs in full those that did not.

    A disk that stayed full (or failing) to the end: the measurements go to the log instead.
    """
    writer.retry_unwritten()
    for record in writer.unwritten:
        logger.error("not written to %s: %s", writer.path, json.dumps(record))
    if writer.unwritten:
        logger.error("%d record(s) could not be written to %s (logged above)",
                     len(writer.unwritten), writer.path)
    return not writer.unwritten


def main(argv: list[str] | None = None, prog: str = "kerasnets bench") -> int:
    """Runs the command line; returns the exit status (see --help)."""
    parser = build_parser(prog)
    args, extra_args = parse_arguments(parser, argv)
    configure_logging(verbose=args.verbose)
    try:
        check_files(args)
    except ValueError as error:
        logger.error("%s", error)
        return EXIT_USAGE
    options = make_options(args, extra_args)
    writer = RecordWriter(args.out)
    stop = threading.Event()
    try:
        status = measure(args, options, writer, stop)
    except KeyboardInterrupt:
        stop.set()
        logger.error("interrupted; %d record(s) already in %s are kept", writer.written, args.out)
        status = EXIT_INTERRUPTED
    if not all_written(writer):
        return status or EXIT_RUN_FAILED
    if status is not None:
        return status
    logger.info("%d record(s) appended to %s, %d failed", writer.written, args.out, writer.failed)
    return EXIT_RUN_FAILED if writer.failed else EXIT_OK
