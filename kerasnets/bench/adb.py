"""The adb client, as this package uses it: list devices, read properties, push, run a shell.

Every call runs the real ``adb`` executable (``--adb PATH``, else ``$ADB``, else ``adb`` on
PATH) in its own process group, so a timeout or an interruption can stop it and whatever it
started. ``adb shell`` is given one command string, quoted on the host with ``shlex``: adb hands
that string to the device shell (``sh -c``), so every file name in it must be quoted once and
only once. Its exit status is the device command's status (adb 1.0.36+ with a shell-v2 device,
i.e. Android 7 or newer).

Device problems show up as adb's own error texts (``adb: device unauthorized.``,
``error: device offline``, ``adb: error: failed to get feature set: device 'X' not found``);
they raise DeviceUnavailableError with a message that says what to do.
"""

import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

# What a device state in `adb devices` means for the user, and what to do about it.
_STATE_ADVICE = {
    "unauthorized": "is unauthorized: unlock it and accept the 'Allow USB debugging' prompt",
    "offline": "is offline: reconnect it, or restart the adb server (adb kill-server)",
    "no permissions": "cannot be opened (no permissions): fix the udev rules for its USB id",
    "not found": "is not attached: 'adb devices' does not list it",
    "disconnected": "closed the connection (disconnected or rebooted)",
}

# adb's error lines for a device it cannot talk to -> the _STATE_ADVICE key.
_DEVICE_ERRORS = (
    (re.compile(r"^(?:adb: )?(?:error: )?device unauthorized", re.M), "unauthorized"),
    (re.compile(r"^(?:adb: )?(?:error: )?device (?:'[^']*' )?offline", re.M), "offline"),
    (re.compile(r"^(?:adb: )?(?:error: )?(?:failed to get feature set: )?device '[^']*' not found",
                re.M), "not found"),
    (re.compile(r"^(?:adb: )?error: (?:closed|protocol fault)", re.M), "disconnected"),
    (re.compile(r"^(?:adb: )?(?:error: )?insufficient permissions", re.M), "no permissions"),
)

PROPERTY_LINE = re.compile(r"^\[([^\]]+)\]: \[(.*)\]\s*$")


class AdbError(RuntimeError):
    """An adb command failed."""


class AdbNotFoundError(AdbError):
    """No adb executable."""


class DeviceUnavailableError(AdbError):
    """The device cannot be used any more (unauthorized, offline, gone)."""


class AdbTimeoutError(AdbError):
    """An adb command ran past its time limit; ``output`` holds what it printed until then."""

    def __init__(self, message: str, output: str):
        super().__init__(message)
        self.output = output


@dataclass(frozen=True)
class DeviceEntry:
    """One line of ``adb devices -l``."""

    serial: str
    state: str
    attributes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    """A finished adb command: exit status, stdout and stderr merged, wall time."""

    returncode: int
    output: str
    seconds: float


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


def describe_state(serial: str, state: str) -> str:
    """Returns a sentence saying that device ``serial`` is in ``state`` and what to do."""
    advice = _STATE_ADVICE.get(state, f"is in state '{state}', not 'device'")
    return f"device {serial} {advice}"


def device_problem(output: str) -> str | None:
    """Returns the _STATE_ADVICE key for adb's device error in ``output``, or None."""
    for pattern, state in _DEVICE_ERRORS:
        if pattern.search(output):
            return state
    return None


def find_adb(explicit: str | None = None, environ: dict | None = None) -> str:
    """Returns the path of the adb executable: ``explicit``, else ``$ADB``, else PATH.

    Raises AdbNotFoundError naming where it looked.
    """
    environ = os.environ if environ is None else environ
    candidate = explicit or environ.get("ADB")
    if candidate:
        found = shutil.which(candidate)
        if found is None:
            source = "--adb" if explicit else "$ADB"
            raise AdbNotFoundError(
                f"adb not found: {source}={candidate!r} is not an executable file"
            )
        return found
    found = shutil.which("adb", path=environ.get("PATH"))
    if found is None:
        raise AdbNotFoundError(
            "adb not found on PATH: install the Android SDK platform-tools, or pass "
            "--adb PATH or set $ADB (use --target local to time models on this host instead)"
        )
    return found


def parse_devices(text: str) -> list[DeviceEntry]:
    """Returns the DeviceEntry list of ``adb devices [-l]`` output.

    Skips the header, the ``* daemon ...`` lines of a starting server and blank lines.
    """
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("*") or line.startswith("List of devices"):
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        serial, state, rest = parts[0], parts[1], parts[2:]
        if state == "no" and rest[:1] == ["permissions"]:
            state, rest = "no permissions", rest[1:]
        attributes = dict(part.split(":", 1) for part in rest if ":" in part)
        entries.append(DeviceEntry(serial, state, attributes))
    return entries


def parse_getprop(text: str) -> dict[str, str]:
    """Returns {property: value} from the output of ``getprop`` (``[key]: [value]`` lines)."""
    props = {}
    for line in text.splitlines():
        match = PROPERTY_LINE.match(line.rstrip("\r"))
        if match:
            props[match.group(1)] = match.group(2)
    return props


def device_info(serial: str | None, props: dict[str, str]) -> dict:
    """Returns the record's ``device`` dict built from ``getprop`` properties."""

    def prop(*names):
        for name in names:
            if props.get(name):
                return props[name]
        return None

    abilist = prop("ro.product.cpu.abilist")
    abi = prop("ro.product.cpu.abi")
    sdk = prop("ro.build.version.sdk")
    return {
        "serial": serial,
        "manufacturer": prop("ro.product.manufacturer"),
        "model": prop("ro.product.model"),
        "soc": prop("ro.soc.model"),
        "soc_manufacturer": prop("ro.soc.manufacturer"),
        "platform": prop("ro.board.platform"),
        "hardware": prop("ro.hardware"),
        "android_version": prop("ro.build.version.release"),
        "sdk": int(sdk) if sdk and sdk.isdigit() else None,
        "abi": abi,
        "abilist": abilist.split(",") if abilist else ([abi] if abi else []),
        "fingerprint": prop("ro.build.fingerprint"),
    }


class Adb:
    """Runs adb commands; ``kill_all`` stops every command still running (on Ctrl-C)."""

    def __init__(self, executable: str):
        self.executable = executable
        self._running = set()
        self._lock = threading.Lock()

    def run(self, args: list[str], serial: str | None = None, timeout: float = 120.0) -> Result:
        """Returns the Result of ``adb [-s serial] args``.

        Raises DeviceUnavailableError when adb reports that the device cannot be reached,
        AdbTimeoutError when the command runs past ``timeout`` seconds (it is killed), and
        AdbError when the adb executable cannot be started or is killed by a signal.
        """
        argv = [self.executable] + (["-s", serial] if serial else []) + list(args)
        start = time.monotonic()
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            raise AdbError(f"cannot run {self.executable}: {error}") from error
        with self._lock:
            self._running.add(process)
        try:
            try:
                raw, _ = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill(process)
                raw, _ = process.communicate()
                where = f"device {serial}: " if serial else ""
                raise AdbTimeoutError(
                    f"{where}adb {args[0]} timed out after {timeout:g} s",
                    raw.decode("utf-8", "replace"),
                ) from None
        finally:
            with self._lock:
                self._running.discard(process)
        output = raw.decode("utf-8", "replace")
        if process.returncode < 0:
            # The adb client itself died (killed, out of memory, a crash): its output is no
            # verdict on the device command, which may or may not have run.
            where = f"device {serial}: " if serial else ""
            raise AdbError(f"{where}adb {args[0]} was killed by signal {-process.returncode} "
                           f"({_signal_name(-process.returncode)})")
        if process.returncode != 0 and serial is not None:
            problem = device_problem(output)
            if problem is not None:
                raise DeviceUnavailableError(describe_state(serial, problem))
        return Result(process.returncode, output, time.monotonic() - start)

    def devices(self) -> list[DeviceEntry]:
        """Returns the DeviceEntry list of ``adb devices -l``; raises AdbError if it fails."""
        result = self.run(["devices", "-l"], timeout=60.0)
        if result.returncode != 0:
            raise AdbError(f"'adb devices -l' failed: {result.output.strip()}")
        return parse_devices(result.output)

    def shell(self, serial: str, command: str, timeout: float) -> Result:
        """Returns the Result of ``command`` (one string, already quoted) on the device."""
        return self.run(["shell", command], serial=serial, timeout=timeout)

    def push(self, serial: str, local: Path | str, remote: str, timeout: float) -> Result:
        """Pushes ``local`` to the device path ``remote``; raises AdbError on failure.

        ``remote`` is a plain path, not shell text: adb sends it over its file protocol.
        """
        result = self.run(["push", str(local), remote], serial=serial, timeout=timeout)
        if result.returncode != 0:
            lines = [line for line in result.output.splitlines() if line.strip()]
            detail = lines[-1] if lines else f"exit status {result.returncode}"
            raise AdbError(f"device {serial}: adb push {local} to {remote} failed: {detail}")
        logger.debug("device %s: %s", serial, result.output.strip())
        return result

    def getprop(self, serial: str, timeout: float = 60.0) -> dict[str, str]:
        """Returns the device's system properties as a dict; raises AdbError on failure."""
        result = self.shell(serial, "getprop", timeout)
        props = parse_getprop(result.output)
        if result.returncode != 0 or not props:
            raise AdbError(
                f"device {serial}: 'getprop' failed (exit status {result.returncode}): "
                f"{result.output.strip()[-300:]}"
            )
        return props

    def kill_all(self) -> None:
        """Kills every adb command still running, with the processes it started."""
        with self._lock:
            running = list(self._running)
        for process in running:
            self._kill(process)

    @staticmethod
    def _kill(process):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
