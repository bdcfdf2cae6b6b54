"""Benchmark records: one JSON object per (device, model, threads, delegate), one line each in a
JSONL file.

``make_record`` gives every field (``None`` until measured), ``finish_record`` stamps the time
and the verdict, ``RecordWriter`` appends, ``read_records`` reads back.
"""

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
    """Appends records to a JSONL file, one line each, under a lock, flushed and fsynced."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.written = 0
        self.failed = 0

    def write(self, record: dict) -> None:
        """Appends ``record`` and logs it; failed records are logged as errors."""
        line = json.dumps(record) + "\n"
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self.written += 1
            self.failed += 0 if record["ok"] else 1
        log_record(record)


def log_record(record: dict) -> None:
    """Logs one finished record: its average when ok, its error otherwise."""
    settings = f"threads {record['threads']}, delegate {record['delegate']}"
    if record["ok"]:
        runs = f" over {record['count']} runs" if record["count"] is not None else ""
        logger.info("device %s, model %s, %s: avg %.1f us%s", record["device"]["serial"],
                    record["model_name"], settings, record["avg_us"], runs)
    else:
        logger.error("%s (%s)", record["error"], settings)


def read_records(paths: list[Path | str]) -> list[dict]:
    """Returns the records of JSONL files, skipping (with a warning) lines that are not JSON."""
    records = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    logger.warning("%s:%d: skipped, not JSON (%s)", path, number, error.msg)
    return records
