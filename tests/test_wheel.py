"""The installed product: build the wheel, install it into a fresh virtual environment, and run
the ``kerasnets`` command from a folder outside the checkout (issue 14).

The environment is new (``python -m venv``), holds the wheel alone (no editable install), and
reaches the pinned dependencies already installed for the tests through a ``.pth`` line naming
their site-packages folder: nothing is downloaded. A ``.pth`` line only adds a folder to
``sys.path``; the ``.pth`` files inside that folder (the test environment's editable kerasnets
finder among them) are not run, so the checkout is not importable from the new environment.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 300


def _packages(root):
    """Returns the dotted names of the packages under ``root``/kerasnets (folders with an
    ``__init__.py``), as setuptools' ``find:`` finds them."""
    return sorted(".".join(p.parent.relative_to(root).parts)
                  for p in (root / "kerasnets").rglob("__init__.py"))


def _run(args, cwd, env):
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """Returns the path of the wheel built from a copy of the checkout (the build leaves its
    build/ and .egg-info folders in the copy, not in the checkout)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "kerasnets", source / "kerasnets",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "--wheel-dir", dist, source], cwd=source, env=os.environ)
    (path,) = dist.glob("kerasnets-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """Returns ``(bin folder, environment variables, work folder)`` of a fresh virtual
    environment with the wheel installed, and an empty folder outside the checkout."""
    env_dir = tmp_path_factory.mktemp("env")
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd=env_dir, env={}).stdout.strip())
    (site / "test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
          "--no-compile", wheel], cwd=env_dir, env=os.environ)
    work = tmp_path_factory.mktemp("work")
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("PYTHON", "TF_CPP", "VIRTUAL_ENV"))}
    environment["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{environment.get('PATH', '')}"
    return env_dir / "bin", environment, work


def test_wheel_holds_every_subpackage_and_the_embedded_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for package in _packages(REPO):
        assert f"{package.replace('.', '/')}/__init__.py" in names, package
    assert "kerasnets/data/cifar10_mini.zip" in names
    assert "kerasnets/data/weights/mobilenet_v3_small_cifar10.h5" in names  # weights="cifar10"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "kerasnets = kerasnets.cli:run" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.mark.slow
def test_installed_command_converts_benchmarks_and_predicts(installed):
    bin_dir, env, work = installed
    kerasnets = bin_dir / "kerasnets"
    where = _run([bin_dir / "python", "-c", "import kerasnets; print(kerasnets.__file__)"],
                 cwd=work, env=env).stdout.strip()
    assert Path(where).is_relative_to(bin_dir.parent), where  # the wheel's, not the checkout's

    assert "predict" in _run([kerasnets, "--help"], cwd=work, env=env).stdout

    # The shipped CIFAR-10 weights, loaded by name from the installed package.
    done = _run([kerasnets, "convert", "--model", "mobilenet_v3_small", "--weights", "cifar10",
                 "--precision", "fp32", "--epochs", "0", "--out", "out", "--no-progress"],
                cwd=work, env=env)
    summary = json.loads(done.stdout)  # stdout holds the JSON alone
    model = work / summary["tflite_path"]
    assert model == work / "out" / "mobilenet_v3_small_fp32.tflite" and model.is_file()
    # The embedded data set, read from the installed package.
    report = json.loads((work / summary["report_path"]).read_text())
    assert report["data"].startswith(str(Path(where).parent / "data" / "cifar10_mini.zip"))
    assert report["weights"] == "cifar10" and report["float_accuracy"] > 0.5
    assert "I0000" not in done.stderr and "absl::InitializeLog" not in done.stderr

    _run([kerasnets, "bench", model, "--target", "local", "--runs", "2", "--warmup", "1",
          "--min-secs", "0", "--warmup-min-secs", "0", "--out", "results.jsonl"], cwd=work, env=env)
    (record,) = [json.loads(line) for line in (work / "results.jsonl").read_text().splitlines()]
    assert record["model_name"] == "mobilenet_v3_small_fp32.tflite" and record["ok"] is True

    with zipfile.ZipFile(Path(where).parent / "data" / "cifar10_mini.zip") as archive:
        image = next(n for n in archive.namelist() if n.startswith("test/cat/"))
        (work / "cat.jpg").write_bytes(archive.read(image))
    done = _run([kerasnets, "predict", model, "cat.jpg", "--top", "3", "--json"], cwd=work,
                env=env)
    assert len(json.loads(done.stdout)["top"]) == 3
