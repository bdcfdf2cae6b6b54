"""Tests of the command line ``kerasnets`` / ``python -m kerasnets``: the dispatcher, quiet
start-up, ``profile``, ``predict`` and ``demo``."""

import json
import logging
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import kerasnets
from kerasnets import export, workflow
from kerasnets._keras import keras, layers
from kerasnets.cli import COMMANDS, demo, main


def _environment_without_tf_settings():
    # The test's own TF_CPP_MIN_LOG_LEVEL (conftest) would hide part of what is checked.
    return {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}


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


@pytest.mark.parametrize("program", [
    ["-m", "kerasnets", "profile"],
    # A script of one command, as tflite/convert.py is of convert.
    ["-c", "from kerasnets.cli import run; run('profile', prog='profile.py')"],
])
def test_the_program_prints_nothing_on_stderr(program, tmp_path):
    # TensorFlow writes its C++ start-up lines (oneDNN, CUDA, CPU features) at import, before
    # TF_CPP_MIN_LOG_LEVEL is read; the kerasnets program hides them unless -v.
    done = subprocess.run([sys.executable, *program, "mobilenet_v3_small", "--input-size", "32"],
                          cwd=tmp_path, env=_environment_without_tf_settings(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("MobilenetV3small:")
    assert done.stderr == ""


def test_bad_input_is_one_line_on_stderr_and_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "kerasnets", "profile", "mobilenet_v9"],
                          cwd=tmp_path, env=_environment_without_tf_settings(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert " ERROR Unknown model name 'mobilenet_v9'" in line


def test_global_verbose_reaches_the_command(capsys, monkeypatch):
    seen = []
    monkeypatch.setattr("kerasnets.cli.profile.configure_logging",
                        lambda verbose=False: seen.append(verbose))
    assert main(["-v", "profile", "mobilenet_v1", "--input-size", "32", "--classes", "2"]) == 0
    assert seen == [True]
    assert capsys.readouterr().out.startswith("mobilenet_1.00_32:")


def test_wants_verbose_reads_flags_before_a_double_dash():
    from kerasnets.cli.common import wants_verbose

    assert wants_verbose(["predict", "m.tflite", "-v"])
    assert wants_verbose(["--verbose", "profile"])
    assert not wants_verbose(["predict", "m.tflite", "--", "-v"])
    assert not wants_verbose(["profile", "mobilenet_v2"])


@pytest.mark.parametrize("crash", [False, True])
def test_native_stderr_is_hidden_and_written_out_on_a_crash(crash):
    code = ("import os, sys\n"
            "from kerasnets.cli.common import hide_native_stderr\n"
            "write_hidden = hide_native_stderr()\n"
            "os.write(2, b'native line\\n')\n"
            "print('python line', file=sys.stderr)\n"
            + ("write_hidden()\n" if crash else ""))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ("python line\nnative line\n" if crash else "python line\n")


# `kerasnets train`'s parser lists the tf.distribute strategies and the recipes, which live
# beside the TensorFlow code that builds them; every other command answers --help without it.
HELP_NEEDS_TENSORFLOW = {"train"}


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_answers_help(command):
    argv = ["--help"] if command is None else [command, "--help"]
    code = ("import sys\n"
            "from kerasnets.cli import main\n"
            "try:\n"
            f"    main({argv!r})\n"
            "except SystemExit as done:\n"
            "    assert done.code == 0, done.code\n"
            "print('tensorflow' in sys.modules, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: kerasnets{'' if command is None else ' ' + command}")
    imported = done.stderr.strip().splitlines()[-1] == "True"
    assert imported == (command in HELP_NEEDS_TENSORFLOW)
    if command is None:
        assert all(name in done.stdout for name in COMMANDS)


def test_demo_starts_from_the_shipped_weights_and_compares_ptq_qat_and_latency(monkeypatch):
    seen = []
    monkeypatch.setattr(workflow, "run", seen.append)
    demo.run_demo("unused")
    opts = seen[0]
    assert (opts.model, opts.weights, opts.epochs) == ("mobilenet_v3_small", "cifar10", 0)
    assert opts.qat and opts.qat_epochs > 0 and opts.compare_ptq and opts.compare_fp32
    assert opts.latency_threads > 0
    # The input size the shipped weights were trained at (its first conv fits any size; the
    # accuracy only holds at that one).
    assert opts.input_size == kerasnets.create_model(
        "mobilenet_v3_small", weights="cifar10").input_shape[1]
    assert workflow.Options(model="m", out="o").epochs == 0


# --- predict ---------------------------------------------------------------------------------

CLASSES = ["cat", "dog", "ship"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Returns ``(folder, keras model, images)``: a 3-class CNN converted to fp32 as
    ``tiny_fp32.tflite`` with the report kerasnets convert writes beside it, and three 32x32
    RGB images saved as PNG (lossless: the test knows their exact pixels)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("predict")
    keras.utils.set_random_seed(1)
    inputs = layers.Input((32, 32, 3))
    x = layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(3, activation="softmax")(x))
    tflite_path = folder / "tiny_fp32.tflite"
    tflite_path.write_bytes(export.convert(model, "fp32"))
    workflow.report_path(tflite_path).write_text(json.dumps(
        {"class_names": CLASSES, "input_size": 32, "preprocessing": "tf"}))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i}.png")
    return folder, model, images


def test_predict_prints_the_top_k_classes_with_probabilities(converted, capsys):
    folder, model, images = converted
    paths = [str(folder / f"{i}.png") for i in range(3)]
    assert main(["predict", str(folder / "tiny_fp32.tflite"), *paths, "--top", "2",
                 "--json"]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # "tf" preprocessing is x / 127.5 - 1 (keras.applications.mobilenet_v2.preprocess_input).
    want = model.predict(images.astype("float32") / 127.5 - 1.0, verbose=0)
    assert [r["image"] for r in results] == paths
    for result, probabilities in zip(results, want):
        order = np.argsort(probabilities)[::-1][:2]
        assert [t["class"] for t in result["top"]] == [CLASSES[i] for i in order]
        np.testing.assert_allclose([t["probability"] for t in result["top"]],
                                   probabilities[order], atol=1e-5)


def test_predict_text_lines(converted, capsys):
    folder, _, _ = converted
    assert main(["predict", str(folder / "tiny_fp32.tflite"), str(folder / "0.png")]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{folder / '0.png'}: ")
    # --top defaults to 5, capped by the 3 classes.
    assert sorted(part.split()[0] for part in line.split(": ", 1)[1].split(", ")) == CLASSES


@pytest.mark.parametrize("make_args, message", [
    (lambda d: [d / "nowhere.tflite", d / "0.png"], "does not exist"),
    (lambda d: [d / "no_report.tflite", d / "0.png"], "no report .*no_report.json"),
    (lambda d: [d / "tiny_fp32.tflite", d / "missing.png"], "cannot be read"),
    (lambda d: [d / "tiny_fp32.tflite", d / "tiny_fp32.json"], "not a decodable image"),
    (lambda d: [d / "tiny_fp32.tflite", d / "0.png", "--top", "0"], "--top must be"),
    (lambda d: [d / "tiny_fp32.tflite", d / "0.png", "--report", d / "bad.json"],
     "has no 'class_names'"),
    (lambda d: [d / "tiny_fp32.tflite", d / "0.png", "--report", d / "four.json"],
     "3 outputs but its report names 4 classes"),
])
def test_predict_bad_input_exits_2(converted, make_args, message, caplog, capsys):
    folder, _, _ = converted
    (folder / "no_report.tflite").write_bytes((folder / "tiny_fp32.tflite").read_bytes())
    (folder / "bad.json").write_text('{"input_size": 32}')
    (folder / "four.json").write_text(json.dumps(
        {"class_names": CLASSES + ["frog"], "input_size": 32, "preprocessing": "tf"}))
    with caplog.at_level(logging.ERROR):
        assert main(["predict", *map(str, make_args(folder))]) == 2
    assert re.search(message, caplog.text)
    assert capsys.readouterr().out == ""


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "demo" in out and "profile" in out
