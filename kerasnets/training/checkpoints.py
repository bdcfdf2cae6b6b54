"""The checkpoint directory of a training run: whether it can be written (``check_writable``),
who may use it (``check_checkpoint_dir``, ``write_run_file``), where a resumed run continues
(``resume_position``), what a run that never saved leaves (``discard_unsaved_run``), and the
files it holds (see ``kerasnets.training.fit``)."""

import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import tensorflow as tf

RUN_FILE = "run.json"
BACKUP_DIR = "backup"
METRICS_CSV = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
FINAL_WEIGHTS = "final_weights.h5"
RESULT_FILE = "result.json"
_RUN_FORMAT = 1
# Temporary folders of check_writable (ignored if another worker lists the directory then).
_PROBE_PREFIX = ".kerasnets-write-check-"


class AlreadyComplete(Exception):
    """Raised by ``fit(resume=True)`` when the run in the checkpoint directory has finished."""


def settings_hash(settings: Dict[str, Any]) -> str:
    """Returns the hash that identifies a run's settings (the JSON of ``settings``)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_run_file(path):
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a readable kerasnets run file: {err}") from err
    if not isinstance(info, dict) or not {"model", "args_hash", "settings"} <= set(info):
        raise ValueError(f"{path} is not a kerasnets run file (no model/args_hash/settings)")
    return info


def write_json(path: Path, obj: Any) -> None:
    """Writes ``obj`` as JSON to ``path`` atomically (a hidden temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def _differences(old, new):
    """Returns ``"key: old -> new"`` strings for the settings that differ."""
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def check_writable(checkpoint_dir: Union[str, Path]) -> None:
    """Raises ``ValueError`` when files cannot be created in ``checkpoint_dir`` (in its nearest
    existing parent when it does not exist yet); leaves nothing behind."""
    path = Path(checkpoint_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--checkpoint-dir {str(path)!r} exists and is not a directory")
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"--checkpoint-dir {str(path)!r} cannot be created: {str(parent)!r} is "
                         "a file, not a directory")
    try:
        with tempfile.TemporaryDirectory(prefix=_PROBE_PREFIX, dir=parent):
            pass
    except OSError as err:
        raise ValueError(f"--checkpoint-dir {str(path)!r} cannot be written: {err}") from err


def check_checkpoint_dir(checkpoint_dir: Union[str, Path], settings: Dict[str, Any],
                         resume: bool) -> Optional[Dict[str, Any]]:
    """Returns the run information (``run.json``) to resume, or None where a new run may start;
    writes nothing.

    A new run needs an empty (or missing) directory. (A directory holding only the
    ``run.json`` of the same settings is accepted: the other workers of a multi-worker job see
    the chief's.) ``resume`` needs the ``run.json`` of the same model and settings.

    Raises:
      ValueError: the directory belongs to another run, another model or other settings, or
        there is nothing to resume.
      AlreadyComplete: ``resume`` of a run that finished.
    """
    path = Path(checkpoint_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--checkpoint-dir {str(path)!r} exists and is not a directory")
    content = sorted(p.name for p in path.iterdir() if p.name != f".{RUN_FILE}.tmp"
                     and not p.name.startswith(_PROBE_PREFIX)) if path.is_dir() else []
    run_file = path / RUN_FILE
    info = _read_run_file(run_file) if run_file.is_file() else None
    model, digest = settings["model"], settings_hash(settings)
    if info is not None and info["model"] != model:
        raise ValueError(
            f"--checkpoint-dir {str(path)!r} holds a run of model {info['model']!r}, not "
            f"{model!r}; kerasnets never writes into another run's checkpoints: choose another "
            "directory"
        )
    if resume:
        if info is None:
            what = f"holds no {RUN_FILE}" if content else "is empty or missing"
            raise ValueError(f"--resume: --checkpoint-dir {str(path)!r} {what}; there is no "
                             "kerasnets run to resume")
        if info["args_hash"] != digest:
            changes = "; ".join(_differences(info["settings"], settings))
            raise ValueError(
                f"--resume: the run in {str(path)!r} was started with other settings ({changes}); "
                "resume it with its own settings, or start a new run in another directory"
            )
        if (path / RESULT_FILE).is_file():
            raise AlreadyComplete(f"the run in {path} has finished ({path / RESULT_FILE}); "
                                  "nothing to resume")
        return info
    same_run_only = content == [RUN_FILE] and info["args_hash"] == digest if info else False
    if content and not same_run_only:
        raise ValueError(
            f"--checkpoint-dir {str(path)!r} is not empty ({', '.join(content[:5])}"
            f"{', ...' if len(content) > 5 else ''}); kerasnets never overwrites a run: pass "
            "--resume to continue it, or choose an empty directory"
        )
    return None


def write_run_file(checkpoint_dir: Union[str, Path], settings: Dict[str, Any]) -> Dict[str, Any]:
    """Returns the run information of a new run (a new run id) after writing it as
    ``run.json`` into ``checkpoint_dir`` (created if needed)."""
    path = Path(checkpoint_dir)
    info = {"format": _RUN_FORMAT, "model": settings["model"], "run_id": uuid.uuid4().hex,
            "args_hash": settings_hash(settings), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "settings": settings}
    path.mkdir(parents=True, exist_ok=True)
    write_json(path / RUN_FILE, info)
    return info


def discard_unsaved_run(checkpoint_dir: Union[str, Path]) -> bool:
    """Returns whether the files of a new run that stopped before its first checkpoint
    (``run.json``, the metrics log, TensorBoard logs, an empty backup folder) were removed, so
    that the run can start again in ``checkpoint_dir``; a run with a checkpoint is kept."""
    path = Path(checkpoint_dir)
    if tf.train.latest_checkpoint(str(path / BACKUP_DIR / "chief")) is not None:
        return False
    for name in (RUN_FILE, METRICS_CSV):
        (path / name).unlink(missing_ok=True)
    for name in (BACKUP_DIR, TENSORBOARD_DIR):
        shutil.rmtree(path / name, ignore_errors=True)
    return True


def resume_position(checkpoint_dir: Union[str, Path], steps_per_epoch: int,
                    save_freq: Union[str, int]) -> Optional[Tuple[int, int]]:
    """Returns ``(epoch, step)`` where a run continues from its backup, or None without one.

    The same rule as ``BackupAndRestore``: after a checkpoint of step ``b`` of epoch ``e``,
    training continues at step ``b + 1`` (or the next epoch); epoch checkpoints continue at the
    next epoch.
    """
    latest = tf.train.latest_checkpoint(str(Path(checkpoint_dir) / BACKUP_DIR / "chief"))
    if latest is None:
        return None
    reader = tf.train.load_checkpoint(latest)
    epoch = int(reader.get_tensor("ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE"))
    batch = int(reader.get_tensor("ckpt_saved_batch/.ATTRIBUTES/VARIABLE_VALUE"))
    if isinstance(save_freq, int) and 0 <= batch < steps_per_epoch - 1:
        return epoch, batch + 1
    return epoch + 1, 0
