"""Tests of kerasnets.training (fit, recipes, distribute, checkpoints) and kerasnets.cli.train
(``kerasnets train``): the papers' recipes, strategies, the checkpoint-directory rules, the
command line and its failures (issue 18), QAT and mixed precision, a killed-and-resumed run
against an uninterrupted one, and a real two-worker MultiWorkerMirroredStrategy job."""

import hashlib
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import tensorflow as tf

from kerasnets import create_model
from kerasnets.data import loader
from kerasnets.cli import train as train_cli
from kerasnets.training import checkpoints, distribute
from kerasnets.training import fit as train
from kerasnets.training import recipes
from kerasnets._keras import keras, layers
from kerasnets.cli.common import EXIT_BAD_INPUT

from test_pipeline import corrupt_folder, write_image_folder

REPO = Path(__file__).resolve().parents[1]
# A small registry model: quick to trace, so the subprocess runs stay short.
SMALL = ["--model", "mobilenet_v1", "--model-arg", "alpha=0.25", "--input-size", "32"]
SUBPROCESS_TIMEOUT_S = 420


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Returns an image folder of 40 real 32x32 JPEGs (10 classes x 4)."""
    return write_image_folder(tmp_path_factory.mktemp("images"))


def tiny_model():
    """Returns a small functional classifier with a depthwise conv, BN and a biased dense head."""
    inputs = layers.Input((32, 32, 3))
    x = layers.Conv2D(4, 3, strides=2, use_bias=False, name="conv")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU()(x)
    x = layers.DepthwiseConv2D(3, name="dw")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax", name="head")(x))


def h5_arrays(path):
    """Returns ``{dataset path: array}`` of every array in an HDF5 weights file."""
    arrays = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, obj: arrays.__setitem__(name, obj[()])
                          if isinstance(obj, h5py.Dataset) else None)
    return arrays


def tree_digest(path):
    """Returns a digest of every file (name and bytes) under ``path``."""
    digest = hashlib.sha256()
    for item in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        digest.update(str(item.relative_to(path)).encode() + item.read_bytes())
    return digest.hexdigest()


# -- recipes -------------------------------------------------------------------------------

# The papers' numbers, typed from the papers (not from kerasnets.training.recipes).
PAPERS = {
    # MobileNetV2 sec. 6.1: RMSProp decay 0.9 momentum 0.9, weight decay 4e-5, rate 0.045 at
    # batch 96, x0.98 per epoch.
    "mobilenet_v2": dict(optimizer_name="rmsprop", rho=0.9, momentum=0.9, weight_decay=4e-5,
                         base_lr=0.045, reference_batch=96, decay_rate=0.98, decay_epochs=1),
    # MobileNetV1 sec. 4: no label smoothing; V2's "following MobileNetV1 setup".
    "mobilenet_v1": dict(optimizer_name="rmsprop", label_smoothing=0.0, base_lr=0.045,
                         decay_rate=0.98),
    # MobileNetV3 sec. 6.1: RMSProp momentum 0.9, rate 0.1 at batch 4096, every 3 epochs,
    # L2 1e-5, EMA 0.9999.
    "mobilenet_v3": dict(optimizer_name="rmsprop", momentum=0.9, base_lr=0.1,
                         reference_batch=4096, decay_epochs=3, weight_decay=1e-5, ema=0.9999),
    # DenseNet sec. 4.2 (CIFAR): SGD Nesterov 0.9, batch 64, 300 epochs, rate 0.1 / 10 at 50%
    # and 75%, weight decay 1e-4.
    "densenet_cifar": dict(optimizer_name="sgd", nesterov=True, momentum=0.9, reference_batch=64,
                           epochs=300, base_lr=0.1, drops=(0.5, 0.75), weight_decay=1e-4,
                           augment="cifar"),
    # DenseNet sec. 4.2 (ImageNet): 90 epochs, batch 256, rate 0.1 / 10 at epochs 30 and 60.
    "densenet_imagenet": dict(epochs=90, reference_batch=256, base_lr=0.1,
                              drops=(30 / 90, 60 / 90)),
}


@pytest.mark.parametrize("name", sorted(PAPERS))
def test_recipes_hold_the_papers_settings(name):
    recipe = recipes.get_recipe(name)
    for field, value in PAPERS[name].items():
        assert getattr(recipe, field) == pytest.approx(value), field
    assert recipe.source  # every preset cites where it comes from


def test_learning_rate_scales_with_the_global_batch():
    recipe = recipes.get_recipe("mobilenet_v2")
    assert recipe.learning_rate(96) == pytest.approx(0.045)
    assert recipe.learning_rate(192) == pytest.approx(0.09)
    schedule = recipe.schedule_fn(steps_per_epoch=100, epochs=50, global_batch=192)
    # x0.98 per epoch, staircase: unchanged within epoch 0, 0.98^10 after ten epochs.
    assert float(schedule(99)) == pytest.approx(0.09)
    assert float(schedule(1000)) == pytest.approx(0.09 * 0.98 ** 10, rel=1e-5)


def test_densenet_schedule_drops_at_half_and_three_quarters():
    schedule = recipes.get_recipe("densenet_cifar").schedule_fn(10, 300, 64)
    assert float(schedule(150 * 10)) == pytest.approx(0.1)      # through epoch 150
    assert float(schedule(150 * 10 + 1)) == pytest.approx(0.01)
    assert float(schedule(225 * 10 + 1)) == pytest.approx(0.001)


def test_cifar_recipe_of_the_mobile_models_warms_up_then_follows_the_cosine():
    recipe = recipes.get_recipe("mobilenet_cifar")
    schedule = recipe.schedule_fn(steps_per_epoch=100, epochs=10, global_batch=256)
    peak = 0.2  # 0.1 at batch 128, scaled linearly to 256

    def cosine(step):  # Loshchilov & Hutter 2017, eq. 5 with eta_min = 0
        return peak * 0.5 * (1 + math.cos(math.pi * step / 1000))

    assert float(schedule(49)) == pytest.approx(cosine(49) * 50 / 100, rel=1e-5)
    assert float(schedule(499)) == pytest.approx(cosine(499), rel=1e-5)
    assert float(schedule(999)) == pytest.approx(cosine(999), rel=1e-3, abs=1e-7)
    config = recipe.optimizer(100, 10, 128).get_config()
    assert config["nesterov"] and config["momentum"] == pytest.approx(0.9)
    model = create_model("mobilenet_v2", input_shape=(32, 32, 3), classes=10, alpha=0.35)
    decayed = {v.name for v in recipe.decayed_variables(model)}
    assert decayed and all("depthwise" not in name and "kernel" in name for name in decayed)


def test_rmsprop_is_inceptions():
    config = recipes.get_recipe("mobilenet_v2").optimizer(10, 5, 96).get_config()
    assert (config["rho"], config["momentum"], config["epsilon"]) == (0.9, 0.9, 1.0)


def test_ema_decay_warms_up_like_tensorflows_moving_average():
    optimizer = recipes.get_recipe("mobilenet_v3").optimizer(10, 5, 64)
    for step in (0, 5, 90, 10 ** 6):
        optimizer.iterations.assign(step)
        # tf.train.ExponentialMovingAverage with num_updates: the shadow of a variable moving
        # from 0 to 1 becomes 1 - decay.
        reference = tf.train.ExponentialMovingAverage(0.9999, num_updates=tf.constant(step))
        variable = tf.Variable(0.0)
        reference.apply([variable])
        variable.assign(1.0)
        reference.apply([variable])
        assert float(optimizer.ema_momentum) == pytest.approx(
            1 - float(reference.average(variable)), abs=1e-6)


@pytest.mark.parametrize("decay_on, names", [
    ("kernels_except_depthwise", {"conv", "head"}),
    ("kernels", {"conv", "dw", "head"}),
])
def test_weight_decay_is_l2_on_the_papers_variables(decay_on, names):
    model = tiny_model()
    recipe = recipes.get_recipe("mobilenet_v2").override(weight_decay=1e-3, decay_on=decay_on)
    trained = train._training_model(model, recipe, None)
    kernels = [model.get_layer(n).weights[0].numpy() for n in names]
    expected = 0.5 * 1e-3 * sum(float(np.sum(k.astype("float64") ** 2)) for k in kernels)
    assert float(tf.add_n(trained.losses)) == pytest.approx(expected, rel=1e-5)
    assert not model.losses  # the caller's model is left as it was


def test_torch_style_decay_covers_every_parameter():
    model = tiny_model()
    decayed = recipes.get_recipe("densenet_cifar").decayed_variables(model)
    assert len(decayed) == len(model.trainable_variables)


def test_unknown_recipe_and_bad_override():
    with pytest.raises(ValueError, match="unknown recipe 'mobilenet_v5'.*Known recipes"):
        recipes.get_recipe("mobilenet_v5")
    with pytest.raises(ValueError, match="unknown recipe field"):
        recipes.get_recipe("finetune").override(learning_rate=1.0)
    with pytest.raises(ValueError, match="`label_smoothing` must be"):
        recipes.get_recipe("finetune").override(label_smoothing=1.5)


# -- strategies ----------------------------------------------------------------------------

def test_strategy_names(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("TPU_NAME", raising=False)
    assert distribute.build_strategy("default") is tf.distribute.get_strategy()
    if not tf.config.list_physical_devices("GPU"):
        assert distribute.build_strategy("auto") is tf.distribute.get_strategy()
    with pytest.raises(ValueError, match="`strategy` must be one of"):
        distribute.build_strategy("horovod")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.build_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        distribute.build_strategy("multiworker")
    if not Path("/dev/accel0").exists():
        with pytest.raises(ValueError, match="no TPU"):
            distribute.build_strategy("tpu")


# -- command line: bad input ---------------------------------------------------------------

def test_help_documents_exit_codes(capsys):
    with pytest.raises(SystemExit) as done:
        train_cli.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--resume" in out and "Exit status" in out


def cli(folder, checkpoint_dir, *extra):
    return train_cli.main(SMALL + ["--data", str(folder), "--checkpoint-dir", str(checkpoint_dir),
                               "--batch-size", "8", "--epochs", "1", *extra])


def test_bad_input_exits_2_with_a_message(folder, tmp_path, caplog):
    cases = [
        (["--recipe", "mobilenet_v9"], "unknown recipe"),
        (["--set", "warmup=3"], "unknown recipe field"),
        (["--eval-data", str(tmp_path / "nothing-*.tfrecord")], "matches no file"),
        (["--resume"], "no kerasnets run to resume"),
    ]
    for extra, message in cases:
        caplog.clear()
        assert cli(folder, tmp_path / "run", *extra) == EXIT_BAD_INPUT, extra
        assert message in caplog.text, extra
        assert not (tmp_path / "run").exists()  # nothing written for bad input
    caplog.clear()
    assert train_cli.main(SMALL + ["--data", str(tmp_path / "no-such-*.tfrecord"),
                               "--checkpoint-dir", str(tmp_path / "run")]) == 2
    assert "matches no file" in caplog.text
    with pytest.raises(SystemExit) as done:
        cli(folder, tmp_path / "run", "--strategy", "horovod")
    assert done.value.code == 2


def test_checkpoint_dirs_of_other_runs_are_never_touched(folder, tmp_path, caplog):
    settings = {"model": "densenet_40_k12", "epochs": 3}
    other_model = tmp_path / "other-model"
    checkpoints.write_run_file(other_model, settings)
    (other_model / "backup").mkdir()
    (other_model / "backup" / "ckpt-1.index").write_bytes(b"checkpoint of another run")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("someone else's files")
    before = {d: tree_digest(d) for d in (other_model, occupied)}

    for directory, extra, message in [
        (other_model, [], "holds a run of model 'densenet_40_k12'"),
        (other_model, ["--resume"], "holds a run of model 'densenet_40_k12'"),
        (occupied, [], "is not empty"),
        (occupied, ["--resume"], "holds no run.json"),
    ]:
        caplog.clear()
        assert cli(folder, directory, *extra) == EXIT_BAD_INPUT
        assert message in caplog.text
    assert before == {d: tree_digest(d) for d in (other_model, occupied)}


def test_resume_refuses_other_settings_and_runs_without_checkpoint(tmp_path):
    settings = {"model": "mobilenet_v1", "epochs": 3, "learning_rate": 0.1}
    checkpoints.write_run_file(tmp_path / "run", settings)
    with pytest.raises(ValueError, match=r"other settings \(epochs: 3 -> 5\)"):
        checkpoints.check_checkpoint_dir(tmp_path / "run", {**settings, "epochs": 5}, resume=True)
    # The same settings again without --resume: the run had saved nothing, so it may start over
    # (how the other workers of a multi-worker job see the chief's run.json).
    assert checkpoints.check_checkpoint_dir(tmp_path / "run", settings, resume=False) is None
    assert checkpoints.resume_position(tmp_path / "run", 10, "epoch") is None


# -- command line: failures that must not cost the user (issue 18) --------------------------

def error_lines(caplog):
    """Returns the ERROR records' messages (the one line a failed command prints)."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_unknown_model_argument_exits_2_naming_it_and_the_allowed_ones(folder, tmp_path, caplog):
    assert cli(folder, tmp_path / "run", "--model-arg", "bogus=1") == EXIT_BAD_INPUT
    message, = error_lines(caplog)
    assert "bogus" in message and "alpha" in message and "\n" not in message
    assert not (tmp_path / "run").exists()


def test_unwritable_checkpoint_dir_is_refused_before_any_work(folder, tmp_path, caplog):
    (tmp_path / "a-file").write_text("not a folder")
    for where in (tmp_path / "a-file" / "run", tmp_path / "a-file"):
        caplog.clear()
        assert cli(folder, where) == EXIT_BAD_INPUT
        message, = error_lines(caplog)
        assert str(where) in message
        # Before the data is opened: nothing was decoded.
        assert "training data" not in caplog.text
    with pytest.raises(ValueError, match="cannot be created"):
        checkpoints.check_writable(tmp_path / "a-file" / "run" / "deeper")


@pytest.mark.parametrize("classes, broken, named", [
    (("cat",), {}, "1 class ('cat')"),
    (("cat", "dog"), {"dog": "only.jpg"}, "class 'dog' has no decodable image"),
])
def test_data_without_two_decodable_classes_exits_2_naming_the_class(tmp_path, caplog, classes,
                                                                     broken, named):
    root = write_image_folder(tmp_path / "data", per_class=2,
                              classes=[c for c in classes if c not in broken])
    for name, file in broken.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / file).write_bytes(b"\xff\xd8\xff\xe0 truncated")
    assert cli(root, tmp_path / "run") == EXIT_BAD_INPUT
    message, = error_lines(caplog)
    assert named in message
    assert not (tmp_path / "run").exists()


def test_a_failed_run_leaves_nothing_that_blocks_its_retry(folder, tmp_path, caplog):
    # A builder's rejection of a value: nothing is written (run.json came before the build).
    run_dir = tmp_path / "run"
    assert cli(folder, run_dir, "--model-arg", "alpha=big") == EXIT_BAD_INPUT
    assert not run_dir.exists() or not list(run_dir.iterdir())
    # A failure inside the first epoch, before any checkpoint: its files are removed.
    data = loader.Input(loader.open_source(folder), 32, "tf", 8, steps_per_epoch=2)

    class Fault(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise RuntimeError("injected fault")

    with pytest.raises(RuntimeError, match="injected fault"):
        train.fit(tiny_model, data, epochs=1, checkpoint_dir=run_dir, verbose=0,
                  callbacks=[Fault()])
    assert not list(run_dir.iterdir())
    # The corrected command in the same directory runs, on data with undecodable files.
    corrupt = corrupt_folder(tmp_path / "corrupt")
    caplog.clear()
    assert cli(corrupt, run_dir) == 0
    assert "truncated.jpg" in caplog.text and "notes.txt" in caplog.text
    assert "skipped 2 of 11 files" in caplog.text
    assert (run_dir / "final_weights.h5").is_file()


# -- fit -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_fit_a_registry_model_writes_checkpoints_metrics_and_weights(folder, tmp_path):
    source = loader.open_source(folder)
    data = loader.Input(source, 32, "tf", 8, augment="cifar", steps_per_epoch=2)
    run_dir = tmp_path / "run"
    result = train.fit("mobilenet_v1", data, source, recipe="densenet_cifar", epochs=2,
                       checkpoint_dir=run_dir, model_kwargs={"alpha": 0.25}, seed=0, verbose=0)
    assert result.steps == 4 and result.images_per_second > 0
    info = json.loads((run_dir / "run.json").read_text())
    assert info["model"] == "mobilenet_v1"
    assert info["settings"]["recipe"]["name"] == "densenet_cifar"
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and {"loss", "accuracy", "val_accuracy", "images_per_second"} <= set(
        rows[0].split(","))
    assert np.isfinite(result.history["loss"]).all()
    summary = json.loads((run_dir / "result.json").read_text())
    assert 0 < summary["wall_seconds"] < 600
    assert (run_dir / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The final weights load into a fresh model of the same arguments and predict the same.
    fresh = create_model("mobilenet_v1", input_shape=(32, 32, 3), classes=10, alpha=0.25,
                         weights=str(result.weights_path))
    images = next(iter(data.eval_dataset()))[0]
    np.testing.assert_allclose(fresh(images, training=False), result.model(images, training=False),
                               atol=1e-6)
    with pytest.raises(train.AlreadyComplete):
        train.fit("mobilenet_v1", data, source, recipe="densenet_cifar", epochs=2,
                  checkpoint_dir=run_dir, resume=True, model_kwargs={"alpha": 0.25}, seed=0)


def test_qat_trains_the_quantized_model(folder):
    pytest.importorskip("kerasnets.quantization.qat",
                        reason="kerasnets.quantization.qat (QAT) is not in this checkout")
    data = loader.Input(loader.open_source(folder), 32, "tf", 8, steps_per_epoch=2)
    result = train.fit(tiny_model(), data, epochs=1, qat=True, seed=0, verbose=0)
    kinds = {type(layer).__name__ for layer in result.model.layers}
    assert "QuantizeWrapperV2" in kinds and result.steps == 2
    assert np.isfinite(result.history["loss"]).all()


def test_mixed_precision_computes_in_low_precision_with_float32_loss(folder):
    data = loader.Input(loader.open_source(folder), 32, "tf", 8, steps_per_epoch=2)
    policy = keras.mixed_precision.global_policy().name
    result = train.fit(tiny_model, data, epochs=1, mixed_precision=True, seed=0, verbose=0)
    assert result.model.get_layer("conv").compute_dtype == distribute.mixed_precision_policy(
        tf.distribute.get_strategy()).split("_")[1]
    assert result.model.get_layer("conv").kernel.dtype == tf.float32
    assert np.isfinite(result.history["loss"]).all()
    assert keras.mixed_precision.global_policy().name == policy  # restored
    with pytest.raises(ValueError, match="no QAT"):
        train.fit(tiny_model, data, epochs=1, mixed_precision=True, qat=True)


# -- processes: kill and resume, two workers -----------------------------------------------

def subprocess_env(**extra):
    """Returns the environment of a ``kerasnets train`` child process."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def launch(args, **env):
    """Starts ``python -m kerasnets train args`` in the repository; returns the process."""
    return subprocess.Popen([sys.executable, "-m", "kerasnets", "train", *args], cwd=REPO,
                            env=subprocess_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(process):
    """Returns the output of ``process`` after it exits (killed past the timeout)."""
    try:
        return process.communicate(timeout=SUBPROCESS_TIMEOUT_S)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[0] + "\n[killed: timeout]"


@pytest.mark.slow
def test_killed_run_resumes_to_the_weights_of_an_uninterrupted_run(folder, tmp_path):
    # 5 steps per epoch, checkpoints every 3 steps: every checkpoint before the last step is
    # mid-epoch (epoch 0 step 2, epoch 1 step 0, ...). The V3 recipe brings RMSProp momentum,
    # L2 and the EMA, all of which must come back from the checkpoint. Dropout is off: Keras does
    # not checkpoint the dropout random state (with dropout the weights differ after a restart).
    args = SMALL + ["--model-arg", "dropout_rate=0", "--data", str(folder), "--batch-size", "8",
                    "--epochs", "3",
                    "--save-freq", "3", "--recipe", "mobilenet_v3", "--lr", "0.05",
                    "--deterministic", "--seed", "7"]
    uninterrupted = launch(args + ["--checkpoint-dir", str(tmp_path / "whole")])
    killed = launch(args + ["--checkpoint-dir", str(tmp_path / "killed")])
    index = tmp_path / "killed" / "backup" / "chief" / "checkpoint"
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S
    try:
        while not index.exists() and killed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        killed.send_signal(signal.SIGKILL)
        killed_output = finish(killed)
        assert killed.returncode == -signal.SIGKILL, killed_output
        assert not (tmp_path / "killed" / "final_weights.h5").exists()
        resumed = launch(args + ["--checkpoint-dir", str(tmp_path / "killed"), "--resume"])
        resumed_output = finish(resumed)
    finally:
        for process in (uninterrupted, killed):
            if process.poll() is None:
                process.kill()
    whole_output = finish(uninterrupted)
    assert uninterrupted.returncode == 0, whole_output
    assert resumed.returncode == 0, resumed_output

    whole = json.loads((tmp_path / "whole" / "result.json").read_text())
    result = json.loads((tmp_path / "killed" / "result.json").read_text())
    epoch, step = result["resumed_at"]["epoch"], result["resumed_at"]["step"]
    assert step > 0 and epoch * 5 + step < 15, "the checkpoint was not mid-epoch"
    assert result["steps"] == whole["steps"] == 15
    a = h5_arrays(tmp_path / "whole" / "final_weights.h5")
    b = h5_arrays(tmp_path / "killed" / "final_weights.h5")
    assert a.keys() == b.keys() and len(a) > 50
    # Bitwise: same data, same ops, deterministic kernels (--deterministic), restored state.
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # The metrics log goes on where the killed run left it.
    rows = (tmp_path / "killed" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch") and rows[-1].startswith("2,")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_workers_on_loopback_end_with_identical_weights(folder, tmp_path):
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    # Global batch 12: 6 per worker; 3 steps per epoch; evaluation ends in a partial batch.
    args = SMALL + ["--data", str(folder), "--eval-data", str(folder), "--batch-size", "12",
                    "--epochs", "2", "--recipe", "mobilenet_v3", "--lr", "0.05",
                    "--strategy", "multiworker", "--checkpoint-dir", str(tmp_path / "run")]
    workers = [launch(args, TF_CONFIG=json.dumps({"cluster": cluster,
                                                  "task": {"type": "worker", "index": index}}))
               for index in range(2)]
    try:
        outputs = [finish(worker) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output
    assert "2 replica(s) in sync" in outputs[0]
    chief = h5_arrays(tmp_path / "run" / "final_weights.h5")
    other = h5_arrays(tmp_path / "run" / "final_weights.worker-1.h5")
    assert chief.keys() == other.keys() and len(chief) > 50
    for name in chief:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)
    for name in ("result.json", "result.worker-1.json"):
        result = json.loads((tmp_path / "run" / name).read_text())
        assert result["steps"] == 2 * (40 // 12)
        assert len(result["history"]["val_accuracy"]) == 2  # evaluated on both workers' shares


def test_the_library_does_not_import_the_command_line():
    # Pipeline direction: kerasnets.cli sits on top of training/ and data/, never below them.
    import ast

    paths = [p for package in ("training", "data")
             for p in (REPO / "kerasnets" / package).glob("*.py")]
    assert len(paths) >= 5
    for path in sorted(paths):
        tree = ast.parse(path.read_text())
        names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names]
        names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [n for n in names if n.startswith("kerasnets.cli")], path


def test_bn_momentum_sets_every_batchnorm_and_is_recorded(folder, tmp_path):
    """One step from zero moving means: moving_mean = (1 - momentum) * batch mean, so the same
    first batch leaves 10x the moving mean with momentum 0.9 that it leaves with 0.99 (the
    BatchNormalization update rule). A nested model's BatchNormalization is set too."""
    data = loader.Input(loader.open_source(folder), 32, "tf", 8, steps_per_epoch=1, seed=0)

    def nested():
        inner = tiny_model()
        inputs = layers.Input((32, 32, 3))
        return keras.Model(inputs, inner(inputs))

    means = {}
    for momentum in (0.9, 0.99):
        result = train.fit(nested, data, epochs=1, seed=0, verbose=0, bn_momentum=momentum,
                           checkpoint_dir=tmp_path / str(momentum))
        bn = result.model.layers[1].get_layer("bn")
        assert bn.momentum == momentum
        means[momentum] = bn.moving_mean.numpy()
        run = json.loads((tmp_path / str(momentum) / "run.json").read_text())
        assert run["settings"]["bn_momentum"] == momentum
    np.testing.assert_allclose(means[0.9], 10 * means[0.99], rtol=1e-4, atol=1e-7)
    assert np.abs(means[0.9]).max() > 0
    for bad in (0, 1, 1.5, "0.9"):
        with pytest.raises(ValueError, match="`bn_momentum` must be a number in \\(0, 1\\)"):
            train.fit(tiny_model(), data, epochs=1, verbose=0, bn_momentum=bad)
