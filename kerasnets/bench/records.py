"""Benchmark records: one JSON object per (device, model, threads, delegate), one line each in a
JSONL file.

``make_record`` gives every field (``None`` until measured), ``finish_record`` stamps the time
and the verdict, ``RecordWriter`` appends, ``read_records`` reads back.
"""

import contextlib
import fcntl
import json
import logging
import os
import secrets
import threading
from datetime import datetime, timezone
from pathlib import Path

from kerasnets.bench.parse import empty_result

logger = logging.getLogger("kerasnets.bench")

RECORD_SCHEMA_VERSION = 1


def new_run_id() -> str:
    """Returns a run id: UTC time, process id and a random suffix."""
    now = datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{os.getpid()}-{secrets.token_hex(2)}"


def make_record(run_id: str, runs: int, warmup: int, target: str, device: dict, model: dict,
                threads: int, delegate: str, tool: dict | None) -> dict:
    """Returns a record with every field present, not yet measured (ok False, no error).

    ``model`` is ``modelinfo.model_info``'s dict, ``device`` ``adb.device_info``'s.
    """
    return {
        "schema_version": RECORD_SCHEMA_VERSION,
        "timestamp": None,
        "run_id": run_id,
        "target": target,
        "device": device,
        **model,
        "threads": threads,
        "delegate": delegate,
        "runs": runs,
        "warmup": warmup,
        "tool": tool,
        **empty_result(),
        "ok": False,
        "error": None,
        "exit_status": None,
        "command": None,
        "output_tail": None,
    }


def finish_record(record: dict, problem: str | None = None) -> dict:
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


class RecordWriter:
    """Appends records to a JSONL file, one line each: nothing already written is lost, and
    every line it writes is whole.

    Each record is one ``write`` of one line under an exclusive ``flock`` (threads of this
    process and other processes appending to the same file take turns), then fsynced. A file
    whose last line was cut short (a crash or a full disk mid-write) gets a newline first, so
    the new record starts on a line of its own. A write that fails (disk full, I/O error) is
    cut back off the file and the record kept in memory; each later write tries it again first,
    and ``unwritten`` holds whatever never made it to disk.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.written = 0
        self.failed = 0
        self.unwritten: list[dict] = []

    def write(self, record: dict) -> None:
        """Appends ``record`` (and any earlier record a failed write kept back) and logs it.

        A write that fails is logged as an error; the record stays in ``unwritten``.
        """
        with self._lock:
            self.unwritten.append(record)
            try:
                self._append_pending()
            except OSError as error:
                logger.error("cannot append to %s: %s; %d record(s) kept in memory, tried again "
                             "with the next record", self.path, error, len(self.unwritten))
        log_record(record)

    def retry_unwritten(self) -> None:
        """Tries once more to append the records a failed write kept back (``unwritten``)."""
        with self._lock:
            if self.unwritten:
                with contextlib.suppress(OSError):
                    self._append_pending()

    def _append_pending(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            while self.unwritten:
                record = self.unwritten[0]
                self._append_line(fd, (json.dumps(record) + "\n").encode("utf-8"))
                self.unwritten.pop(0)
                self.written += 1
                self.failed += 0 if record["ok"] else 1
        finally:
            os.close(fd)  # also releases the lock

    def _append_line(self, fd: int, line: bytes) -> None:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # the last line was cut short: start on a fresh one
        try:
            self._write_all(fd, line)
            os.fsync(fd)
        except OSError:
            # Leave the file as it was: no half line for a reader to trip on.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]


def log_record(record: dict) -> None:
    """Logs one finished record: its average when ok, its error otherwise."""
    settings = f"threads {record['threads']}, delegate {record['delegate']}"
    if record["ok"]:
        runs = f" over {record['count']} runs" if record["count"] is not None else ""
        logger.info("device %s, model %s, %s: avg %.1f us%s", record["device"]["serial"],
                    record["model_name"], settings, record["avg_us"], runs)
    else:
        logger.error("%s (%s)", record["error"], settings)


class RecordsFileError(ValueError):
    """A file is not the benchmark records it was given as; the message names file and line."""


# Fields every record has; a JSON object without them is not a record.
_RECORD_KEYS = ("model_name", "ok")


def _looks_like(value: object) -> str:
    """Returns what a JSON value that is not a record probably is, as advice ("" if unknown)."""
    entries = value if isinstance(value, list) else [value]
    if entries and all(isinstance(e, dict) and "tflite_path" in e for e in entries):
        return ("; it looks like a converter report.json: give it to report with "
                "--accuracy-report")
    return ""


def _not_records(path: Path, text: str) -> str:
    """Returns why a file whose lines are not JSON is not records, with what it probably is."""
    try:
        hint = _looks_like(json.loads(text))
    except json.JSONDecodeError:
        hint = ""
    return f"{path}: not benchmark records, no line of it is a JSON record{hint}"


def _read_text(path: Path) -> str:
    """Returns the text of a records file; raises RecordsFileError for a binary file."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        what = ("a TFLite model: measure it with 'kerasnets bench' and give report the records "
                "file (--out)" if data[4:8] == b"TFL3" else "not a text file")
        raise RecordsFileError(f"{path}: not benchmark records, {what}") from None


def parse_record_line(path: Path, number: int, line: str) -> dict | None:
    """Returns the record on line ``number`` of ``path``, None when the line is not JSON (cut
    short by a crash or a full disk).

    Raises RecordsFileError when the line is JSON but not a record: this is not a records file.
    """
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        raise RecordsFileError(
            f"{path}:{number}: a JSON {type(value).__name__}, not a record object"
            f"{_looks_like(value)}; records files hold one JSON object per line, as "
            "'kerasnets bench --out' writes")
    missing = [key for key in _RECORD_KEYS if key not in value]
    if missing:
        raise RecordsFileError(
            f"{path}:{number}: a JSON object without the record field(s) "
            f"{', '.join(missing)}{_looks_like(value)}; records files hold the lines "
            "'kerasnets bench --out' writes")
    return value


def read_records(paths: list[Path | str]) -> list[dict]:
    """Returns the records of JSONL files, in file order.

    A line that is not JSON (one cut short by a crash or a full disk) is skipped with a warning
    naming its file and line; every other record is kept. Raises RecordsFileError (a
    ValueError) naming the file, the line and what the file probably is, when a file is not
    records: a JSON line that is no record object, no record line at all, a binary file.
    """
    records = []
    for path in map(Path, paths):
        text = _read_text(path)
        found, broken = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            record = parse_record_line(path, number, line)
            if record is None:
                broken.append(number)
            else:
                found.append(record)
        if broken and not found:
            raise RecordsFileError(_not_records(path, text) + "; report reads the JSON lines "
                                   "that 'kerasnets bench --out FILE' appends")
        for number in broken:
            logger.warning("%s:%d: skipped a line that is not JSON (cut short by a crash or a "
                           "full disk?); the other records are kept", path, number)
        records.extend(found)
    return records


def check_records_output(path: Path) -> None:
    """Raises ValueError unless records can be appended to ``path``: a new file in a folder that
    can be written (created when missing), or an existing records file.

    Creates the file (empty) when it is missing: that is how write access is known for sure.
    """
    if path.is_dir():
        raise ValueError(f"--out {str(path)!r} is a folder; give a records file in it, e.g. "
                         f"{str(path / 'results.jsonl')!r}")
    if path.exists() and not path.is_file():
        raise ValueError(f"--out {str(path)!r} is not a regular file; give a .jsonl file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as error:
        raise ValueError(f"--out {str(path)!r} cannot be written: {error.strerror or error}; "
                         "give a file in a folder you can write") from None
    with open(path, "rb") as handle:
        first = handle.readline(1 << 20).decode("utf-8", "replace")
    # The writer starts every record with its schema version: a cut-short record still does.
    if not first.strip() or first.startswith('{"schema_version"'):
        return
    advice = "; give a new file name, or a records file that 'kerasnets bench' wrote"
    try:
        if parse_record_line(path, 1, first) is None:
            raise RecordsFileError(_not_records(path, _read_text(path)))
    except RecordsFileError as error:
        raise ValueError(f"--out {error}{advice}") from None
