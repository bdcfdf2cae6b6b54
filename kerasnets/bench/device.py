"""One Android device's side of a benchmark run: its folder, the benchmark binary, the models,
and ``benchmark_model`` runs, over adb.

The binary lives in ``/data/local/tmp/kerasnets_bench/benchmark_model`` (pushed again only when
its size or sha256 changed), the models in a per-run folder ``.../run-<run id>/<i>/<name>``
(removed at the end unless kept). Every file name goes through ``shlex`` exactly once: adb hands
the command string to the device shell.
"""

import logging
import shlex
import signal
from pathlib import Path

from kerasnets.bench import adb as adbmod
from kerasnets.bench.modelinfo import binary_abi

logger = logging.getLogger("kerasnets.bench")

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

OUTPUT_TAIL_LINES = 25


class SetupError(RuntimeError):
    """A device (or the whole run) cannot be benchmarked; the message says why."""


def tail(output: str, lines: int = OUTPUT_TAIL_LINES) -> str:
    """Returns the last ``lines`` non-empty lines of ``output``."""
    kept = [line for line in output.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def describe_exit(status: int, output: str) -> str:
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


def benchmark_argv(model_remote: str, threads: int, delegate: str, runs: int, warmup: int,
                   min_secs: float | None = None, warmup_min_secs: float | None = None,
                   extra_args: list[str] = ()) -> list[str]:
    """Returns the device argv of one benchmark_model run (``None`` seconds: the tool's own)."""
    argv = [
        DEVICE_BINARY,
        f"--graph={model_remote}",
        f"--num_threads={threads}",
        f"--num_runs={runs}",
        f"--warmup_runs={warmup}",
    ]
    if min_secs is not None:
        argv.append(f"--min_secs={min_secs:g}")
    if warmup_min_secs is not None:
        argv.append(f"--warmup_min_secs={warmup_min_secs:g}")
    return argv + DELEGATE_FLAGS[delegate] + list(extra_args)


def check_binary_abi(binary: Path, device: dict) -> None:
    """Raises SetupError when ``binary`` cannot run on ``device``: not an executable, or an ELF
    file for an ABI the device does not run."""
    try:
        abi = binary_abi(binary)
    except ValueError as error:
        raise SetupError(f"device {device['serial']}: {error}") from None
    if abi is not None and abi not in device["abilist"]:
        raise SetupError(
            f"device {device['serial']}: benchmark binary {str(binary)!r} is built for {abi}, "
            f"but the device runs {', '.join(device['abilist']) or 'an unknown ABI'}"
        )


class DeviceSession:
    """The adb side of one device in one run: install the binary, push models, run, clean up."""

    def __init__(self, adb: adbmod.Adb, serial: str, run_id: str, timeout: float):
        self.adb = adb
        self.serial = serial
        self.timeout = timeout
        self.run_dir = f"{DEVICE_WORKDIR}/run-{run_id}"
        self.created_run_dir = False
        self._runs = 0
        self._pidfile = None

    def shell(self, command: str, timeout: float = 120.0) -> adbmod.Result:
        """Returns the Result of ``command`` (shell text, already quoted) on the device."""
        return self.adb.shell(self.serial, command, timeout)

    def device_info(self) -> dict:
        """Returns the record's ``device`` dict, from the device's ``getprop``."""
        return adbmod.device_info(self.serial, self.adb.getprop(self.serial))

    def install_binary(self, binary: Path, sha256: str, model_count: int) -> None:
        """Creates the run's folders and makes ``binary`` the device's runnable benchmark_model.

        Pushes it only when the device copy's size or sha256 differs. Raises SetupError (or an
        AdbError) when the device cannot take it or cannot run it.
        """
        model_dirs = [f"{self.run_dir}/{i}" for i in range(model_count)]
        quoted = shlex.quote(DEVICE_BINARY)
        # One round trip: create the run's folders, then print the installed binary's size
        # and sha256 (nothing when there is none yet).
        result = self.shell(
            f"{shlex.join(['mkdir', '-p', *model_dirs])} || exit 1; "
            f"stat -c %s {quoted} 2>/dev/null && sha256sum {quoted} 2>/dev/null; exit 0"
        )
        if result.returncode != 0:
            raise SetupError(
                f"device {self.serial}: cannot create {self.run_dir}: {tail(result.output, 3)}"
            )
        self.created_run_dir = True
        if result.output.split()[:2] == [str(binary.stat().st_size), sha256]:
            logger.info("device %s: %s is up to date, not pushed", self.serial, DEVICE_BINARY)
        else:
            logger.info("device %s: pushing %s to %s", self.serial, binary, DEVICE_BINARY)
            self.adb.push(self.serial, binary, DEVICE_BINARY, self.timeout)
        # chmod even when up to date: an earlier run may have pushed it and failed here.
        result = self.shell(f"chmod 755 {quoted}")
        if result.returncode != 0:
            raise SetupError(
                f"device {self.serial}: cannot make {DEVICE_BINARY} executable: "
                f"{tail(result.output, 3)}"
            )
        # benchmark_model --help prints its usage and exits 1; 126/127 or a signal mean the
        # binary cannot be executed here (not executable, wrong ABI, missing loader).
        result = self.shell(f"{quoted} --help", timeout=60.0)
        if result.returncode in (126, 127) or result.returncode > 128:
            raise SetupError(
                f"device {self.serial}: {DEVICE_BINARY} cannot run on this device: "
                + describe_exit(result.returncode, result.output)
            )

    def push_model(self, index: int, model: dict) -> str:
        """Pushes model number ``index`` (a ``model_info`` dict); returns its device path."""
        remote = f"{self.run_dir}/{index}/{model['model_name']}"
        self.adb.push(self.serial, model["model_path"], remote, self.timeout)
        return remote

    def command(self, argv: list[str]) -> str:
        """Returns the device shell text of the next run of ``argv`` (for ``run``).

        The run writes its pid to a file of its own in the run folder: a timed-out run is
        killed by that pid, never by an earlier run's (finished, its pid maybe reused).
        """
        self._runs += 1
        self._pidfile = f"{self.run_dir}/{self._runs}.pid"
        return f"echo $$ > {shlex.quote(self._pidfile)} && exec {shlex.join(argv)}"

    def run(self, command: str) -> adbmod.Result:
        """Returns the Result of one benchmark_model run, ``command`` from ``command()``.

        Raises AdbTimeoutError after ``timeout`` seconds, once the run is also stopped on the
        device; other AdbErrors as ``Adb.run``.
        """
        try:
            return self.shell(command, timeout=self.timeout)
        except adbmod.AdbTimeoutError:
            self._kill_run()
            raise

    def _kill_run(self) -> None:
        """Kills the benchmark_model process that ran past its time, if it started."""
        pidfile = shlex.quote(self._pidfile)
        try:
            self.shell(f'test -f {pidfile} && kill -9 "$(cat {pidfile})" 2>/dev/null', 30.0)
        except adbmod.AdbError as error:
            logger.warning("device %s: could not stop the timed-out run: %s", self.serial, error)

    def cleanup(self, keep: bool, interrupted: bool) -> None:
        """Removes the run's folder from the device, unless ``keep`` or ``interrupted``."""
        if not self.created_run_dir:
            return
        if interrupted:
            logger.warning("device %s: interrupted; %s left on the device", self.serial,
                           self.run_dir)
            return
        if keep:
            logger.info("device %s: models kept in %s", self.serial, self.run_dir)
            return
        try:
            self.shell(shlex.join(["rm", "-rf", self.run_dir]))
        except adbmod.AdbError as error:
            logger.warning("device %s: could not remove %s: %s", self.serial, self.run_dir, error)
