"""Tests of the command line ``python -m kerasnets`` (``profile`` and ``demo``)."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kerasnets.cli import main



@pytest.mark.parametrize("args, params, macs", [
    # keras.applications figures measured in ../shared/REFERENCE.md (224x224, 1000 classes).
    (["profile", "mobilenet_v2"], "3,538,984 params", "300.8M MACs"),
    (["profile", "mobilenet_v3_small", "--input-size", "224"], "2,554,968 params", "56.5M MACs"),
])
def test_profile_prints_the_reference_counts(args, params, macs, capsys):
    assert main(args) == 0
    first_line = capsys.readouterr().out.splitlines()[0]
    assert params in first_line and macs in first_line


def test_profile_prints_a_per_layer_table(capsys):
    assert main(["profile", "mobilenet_v1", "--input-size", "128", "--classes", "10"]) == 0
    out = capsys.readouterr().out
    assert "conv_dw_1" in out and "conv_preds" in out


@pytest.mark.parametrize("args, message", [
    (["profile", "mobilenet_v5"], "Unknown model name 'mobilenet_v5'"),
    (["profile", "mobilenet_v2", "--input-size", "16"], "at least 32"),
])
def test_profile_bad_input_exits_2(args, message, caplog):
    with caplog.at_level(logging.ERROR):
        assert main(args) == 2
    assert message in caplog.text


def test_demo_with_unwritable_out_exits_2_before_training(tmp_path, caplog):
    (tmp_path / "file").write_text("not a folder")
    with caplog.at_level(logging.ERROR):
        assert main(["demo", "--out", str(tmp_path / "file" / "demo"), "--no-progress"]) == 2
    assert "cannot be written" in caplog.text


def test_python_dash_m_kerasnets_runs(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-m", "kerasnets", "profile", "mobilenet_v3_small",
                           "--input-size", "32"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("MobilenetV3small:")


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "demo" in out and "profile" in out
