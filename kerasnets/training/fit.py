"""Training at scale: one ``fit`` over ``tf.distribute``, with checkpoints, resume and recipes.

``fit(model, train, eval_data, recipe=..., epochs=..., checkpoint_dir=...)`` trains a registry
model (or any functional Keras model) on a ``kerasnets.data.loader.Input``; ``kerasnets train``
(``kerasnets.cli.train``) is its command line.

Training runs through Keras ``Model.fit`` under a ``tf.distribute`` strategy (one device,
``MirroredStrategy`` over local GPUs, ``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``, or a
TPU); the model is built inside ``strategy.scope()``. ``qat=True`` trains the
``kerasnets.quantization.qat.quantize_model`` form of the model.

The checkpoint directory holds ``run.json`` (model, settings and their hash, run id),
``backup/`` (``keras.callbacks.BackupAndRestore``: weights, optimizer, EMA, epoch and step,
written every ``save_freq``), ``metrics.csv`` (and ``tensorboard/`` with ``tensorboard``),
and at the end ``final_weights.h5`` (Keras 2 HDF5, loadable with
``create_model(..., weights=path)``) and ``result.json``. With ``resume`` a run killed at any
point continues from its last checkpoint: the input pipeline (``kerasnets.data.loader``) restarts
at the exact epoch and step, so the result matches an uninterrupted run (models with dropout
draw other dropout masks after a restart: Keras does not checkpoint its random-number state).
A directory is never reused by another run: without ``resume`` it must be empty, and
``resume`` refuses a directory of another model or other settings. For
``MultiWorkerMirroredStrategy`` the directory must be storage that every worker sees (as
``BackupAndRestore`` requires); only the chief writes checkpoints and logs, and each other
worker writes its final weights as ``final_weights.worker-<index>.h5``.
"""

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import logging
import math
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Optional

import tensorflow as tf

from kerasnets.data import loader
from kerasnets.training import recipes
from kerasnets._keras import keras, layers
from kerasnets.models.registry import create_model, get_entry

STRATEGIES = ("auto", "default", "mirrored", "multiworker", "tpu")
RUN_FILE = "run.json"
BACKUP_DIR = "backup"
METRICS_CSV = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
FINAL_WEIGHTS = "final_weights.h5"
RESULT_FILE = "result.json"
_RUN_FORMAT = 1
# Steps timed at the start of a run before throughput is measured (tracing, warm-up).
_THROUGHPUT_WARMUP_STEPS = 1

log = logging.getLogger("kerasnets.training.fit")


class AlreadyComplete(Exception):
    """Raised by ``fit(resume=True)`` when the run in the checkpoint directory has finished."""


# -- strategies ----------------------------------------------------------------------------

def _tf_config():
    """Returns the parsed ``TF_CONFIG`` environment variable, or None when it is unset."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON ({err}): {raw!r}") from err
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise ValueError(f"TF_CONFIG must be a JSON object with a 'cluster'; received {raw!r}")
    return config


def _tpu_address(tpu):
    """Returns the TPU to connect to: ``tpu``, ``$TPU_NAME``, ``"local"`` on a TPU VM, or None."""
    if tpu:
        return tpu
    if os.environ.get("TPU_NAME"):
        return os.environ["TPU_NAME"]
    return "local" if Path("/dev/accel0").exists() or Path("/dev/vfio/0").exists() else None


def build_strategy(name="auto", tpu=None):
    """Returns the ``tf.distribute.Strategy`` called ``name``.

    - ``"default"``: TensorFlow's default strategy (one device);
    - ``"mirrored"``: ``MirroredStrategy`` over the local GPUs (the CPU without GPUs);
    - ``"multiworker"``: ``MultiWorkerMirroredStrategy`` of the cluster in ``TF_CONFIG``;
    - ``"tpu"``: ``TPUStrategy`` of ``tpu`` (a name or ``grpc://`` address; default
      ``$TPU_NAME``, or the local TPU of a TPU VM);
    - ``"auto"``: a TPU when one is named or attached, else multiworker when ``TF_CONFIG`` has
      more than one task, else mirrored with more than one GPU, else the default.

    A multi-worker strategy must be built before TensorFlow runs any op in the process.

    Raises:
      ValueError: an unknown name, no ``TF_CONFIG`` for ``"multiworker"``, no TPU for ``"tpu"``.
    """
    if name not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {STRATEGIES}; received strategy={name!r}")
    if name == "auto":
        config = _tf_config()
        tasks = sum(len(v) for v in config["cluster"].values()) if config else 0
        if _tpu_address(tpu):
            name = "tpu"
        elif tasks > 1:
            name = "multiworker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
        log.info("--strategy auto: %s", name)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if _tf_config() is None:
            raise ValueError(
                "--strategy multiworker needs the cluster in the TF_CONFIG environment variable, "
                'e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    address = _tpu_address(tpu)
    if address is None:
        raise ValueError("--strategy tpu: no TPU on this machine; name one with --tpu or the "
                         "TPU_NAME environment variable")
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as err:
        raise ValueError(f"--strategy tpu: cannot reach the TPU {address!r}: {err}") from err
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
    """Returns whether this process is the one that writes checkpoints and logs."""
    return bool(strategy.extended.should_checkpoint)


def _worker_index(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(resolver.task_id) if resolver is not None and resolver.task_id is not None else 0


def mixed_precision_policy(strategy):
    """Returns the Keras mixed-precision policy for ``strategy``'s devices: ``mixed_bfloat16``
    on TPUs and CPUs, ``mixed_float16`` on GPUs."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "mixed_bfloat16"
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"


@contextlib.contextmanager
def _dtype_policy(name):
    if name is None:
        yield
        return
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


# -- checkpoint directory ------------------------------------------------------------------

def settings_hash(settings):
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


def _write_json(path, obj):
    """Writes ``obj`` as JSON to ``path`` atomically (a hidden temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def _differences(old, new):
    """Returns ``"key: old -> new"`` strings for the settings that differ."""
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def prepare_checkpoint_dir(checkpoint_dir, settings, resume, chief=True):
    """Returns the run information (``run.json``) of ``checkpoint_dir`` for this run.

    A new run needs an empty (or missing) directory, and the chief writes ``run.json`` with a
    new run id. (A directory holding only the ``run.json`` of the same settings is accepted:
    the other workers of a multi-worker job see the chief's.) ``resume`` needs the ``run.json``
    of the same model and settings.

    Raises:
      ValueError: the directory belongs to another run, another model or other settings, or
        there is nothing to resume.
      AlreadyComplete: ``resume`` of a run that finished.
    """
    path = Path(checkpoint_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--checkpoint-dir {str(path)!r} exists and is not a directory")
    content = sorted(p.name for p in path.iterdir()
                     if p.name != f".{RUN_FILE}.tmp") if path.is_dir() else []
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
    info = {"format": _RUN_FORMAT, "model": model, "run_id": uuid.uuid4().hex,
            "args_hash": digest, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "settings": settings}
    if chief:
        path.mkdir(parents=True, exist_ok=True)
        _write_json(run_file, info)
    return info


def resume_position(checkpoint_dir, steps_per_epoch, save_freq):
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


# -- callbacks -----------------------------------------------------------------------------

class _Throughput(keras.callbacks.Callback):
    """Measures training images per second (global batch / median step time, from the start to
    the end of each step: input, forward, backward, all-reduce and update; not checkpoint
    writing or evaluation) and adds it to the epoch logs as ``images_per_second``."""

    def __init__(self, global_batch):
        super().__init__()
        self.global_batch = global_batch
        self.intervals = []
        self._start = None
        self._seen = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._seen += 1
        if self._seen > _THROUGHPUT_WARMUP_STEPS:
            self.intervals.append(time.perf_counter() - self._start)

    @property
    def images_per_second(self):
        """Returns the measured images/s, or None before any step was timed."""
        if not self.intervals:
            return None
        ordered = sorted(self.intervals)
        return self.global_batch / ordered[len(ordered) // 2]

    def on_epoch_end(self, epoch, logs=None):
        # Every epoch gets the key, so that metrics.csv has the column from its first row.
        if logs is not None:
            value = self.images_per_second
            logs["images_per_second"] = math.nan if value is None else value


class _StartCheck(keras.callbacks.Callback):
    """Logs where training starts and checks the restored step counter against the input
    pipeline's starting point (they must agree for a resumed run to see the right data)."""

    def __init__(self, expected_step, where):
        super().__init__()
        self.expected_step = expected_step
        self.where = where

    def on_train_begin(self, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step != self.expected_step:
            raise RuntimeError(
                f"the restored optimizer is at step {step} but the input pipeline starts at "
                f"{self.where} (step {self.expected_step}); the checkpoint does not match its "
                "run.json"
            )
        log.info("training starts at %s (global step %d)", self.where, step)


# -- fit -----------------------------------------------------------------------------------

@dataclasses.dataclass
class FitResult:
    """What ``fit`` returns: the trained ``model`` (EMA weights when the recipe uses EMA) and
    how the run went."""

    model: object
    history: dict
    recipe: object
    initial_epoch: int
    initial_step: int
    steps: int
    images_per_second: Optional[float]
    weights_path: Optional[Path]


def _build_model(model, train, model_kwargs, strategy):
    """Returns the Keras model of ``model`` (a registry name, a function or a model)."""
    if isinstance(model, str):
        return create_model(model, input_shape=(train.image_size, train.image_size, 3),
                            classes=train.num_classes, **model_kwargs)
    if isinstance(model, keras.Model):
        if model.distribute_strategy is not strategy:
            raise ValueError(
                "`model` was built outside the scope of the training strategy; pass a function "
                "that builds it (fit calls it inside strategy.scope()), or a registry name"
            )
        return model
    if callable(model):
        return model()
    raise ValueError(f"`model` must be a registry name, a function returning a Keras model, or "
                     f"a Keras model; received {type(model).__name__}")


def _training_model(model, recipe, policy):
    """Returns the model that is compiled: ``model``'s layers, a float32 output under mixed
    precision, and the recipe's L2 weight decay as a model loss (``model`` is left as is)."""
    if not model.inputs:
        raise ValueError("`model` must be a functional or Sequential Keras model (it has no "
                         "inputs); kerasnets builders return functional models")
    outputs = model.outputs
    if policy is not None:
        outputs = [layers.Activation("linear", dtype="float32", name=f"float32_output_{i}")(o)
                   for i, o in enumerate(outputs)]
    trained = keras.Model(model.inputs, outputs if len(outputs) > 1 else outputs[0],
                          name=f"{model.name}_training")
    decayed = recipe.decayed_variables(model)
    if recipe.weight_decay and decayed:
        coefficient = 0.5 * recipe.weight_decay
        trained.add_loss(lambda: coefficient * tf.add_n(
            [tf.reduce_sum(tf.square(tf.cast(v, tf.float32))) for v in decayed]))
    return trained


def _save_weights(model, path):
    tmp = path.with_name(f".{path.stem}.tmp.h5")
    model.save_weights(str(tmp))
    os.replace(tmp, path)


def fit(model, train, eval_data=None, *, recipe=None, epochs=None, strategy=None,
        checkpoint_dir=None, resume=False, qat=False, learning_rate=None, model_kwargs=None,
        mixed_precision=False, save_freq="epoch", seed=None, verbose="auto", tensorboard=False,
        settings=None, callbacks=()):
    """Returns the ``FitResult`` of training ``model`` on ``train`` with a recipe.

    Args:
      model: a registry name (built with ``train``'s image size and classes and
        ``model_kwargs``), a function returning a Keras model, or a Keras model built under
        ``strategy`` (any model, for the default strategy). Names and functions are built
        inside ``strategy.scope()``.
      train: a ``kerasnets.data.loader.Input``.
      eval_data: a ``loader.Input``, or a ``loader.DataSource`` read like ``train``;
        evaluated after every epoch.
      recipe: a ``kerasnets.training.recipes`` name or ``Recipe``; by default the recipe of the model's
        family for a registry name, else ``"finetune"``.
      epochs: total epochs of the run; by default the recipe's.
      strategy: a ``tf.distribute.Strategy`` or a ``build_strategy`` name (default ``"auto"``).
      checkpoint_dir: where checkpoints, logs and final weights go (see the module docstring);
        None trains without checkpoints.
      resume: continue the run in ``checkpoint_dir`` from its last checkpoint.
      qat: train the ``kerasnets.quantization.qat.quantize_model`` form of the model.
      learning_rate: the peak learning rate; by default the recipe's, scaled to the global
        batch size.
      mixed_precision: build a registry name or function under ``mixed_precision_policy``.
      save_freq: ``"epoch"`` or a number of steps between checkpoints.
      seed: seeds the model's initialization (``keras.utils.set_random_seed``); the input
        order and augmentation follow ``train.seed``.
      verbose: Keras ``fit`` verbosity; ``"auto"`` shows a progress bar on a terminal and one
        line per epoch otherwise (nothing on non-chief workers).
      tensorboard: also write TensorBoard logs under ``checkpoint_dir``.
      settings: extra settings recorded in ``run.json`` and compared on ``resume``.
      callbacks: more Keras callbacks.

    Raises:
      ValueError: bad arguments, or a checkpoint directory this run must not use.
      AlreadyComplete: ``resume`` of a finished run.
    """
    if not isinstance(train, loader.Input):
        raise ValueError(f"`train` must be a kerasnets.data.loader.Input; received "
                         f"{type(train).__name__}")
    if isinstance(eval_data, loader.DataSource):
        # steps_per_epoch only matters for training.
        eval_data = dataclasses.replace(train, source=eval_data, steps_per_epoch=1)
    if eval_data is not None and not isinstance(eval_data, loader.Input):
        raise ValueError(f"`eval_data` must be None, a loader.Input or a loader.DataSource; "
                         f"received {type(eval_data).__name__}")
    if eval_data is not None and eval_data.num_classes != train.num_classes:
        raise ValueError(f"`eval_data` has {eval_data.num_classes} classes, `train` "
                         f"{train.num_classes}")
    if not isinstance(strategy, tf.distribute.Strategy):
        strategy = build_strategy(strategy or "auto")
    if recipe is None:
        if isinstance(model, str):
            recipe = recipes.default_recipe(get_entry(model).family)
        else:
            recipe = "finetune"
    recipe = recipes.get_recipe(recipe)
    epochs = recipe.epochs if epochs is None else epochs
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs <= 0:
        raise ValueError(f"`epochs` must be a positive integer (recipe {recipe.name!r} sets "
                         f"none); received epochs={epochs!r}")
    if save_freq != "epoch" and (not isinstance(save_freq, int) or save_freq <= 0):
        raise ValueError(f"`save_freq` must be 'epoch' or a positive number of steps; received "
                         f"save_freq={save_freq!r}")
    if learning_rate is not None and not (isinstance(learning_rate, (int, float))
                                          and learning_rate > 0):
        raise ValueError(f"`learning_rate` must be a number > 0; received {learning_rate!r}")
    if resume and checkpoint_dir is None:
        raise ValueError("`resume` needs `checkpoint_dir`")
    if tensorboard:
        if checkpoint_dir is None:
            raise ValueError("`tensorboard` logs go under `checkpoint_dir`; give one")
        if importlib.util.find_spec("tensorboard") is None:
            raise ValueError("--tensorboard writes summaries with the tensorboard package, which "
                             "is not installed: pip install tensorboard (metrics.csv is always "
                             "written)")
    if mixed_precision and (qat or isinstance(model, keras.Model)):
        raise ValueError("`mixed_precision` needs a model built by fit (a registry name or a "
                         "function) and no QAT (fake-quantization runs in float32)")
    model_kwargs = dict(model_kwargs or {})
    chief = is_chief(strategy)
    global_batch = train.batch_size
    steps_per_epoch = train.steps_per_epoch
    peak_lr = recipe.learning_rate(global_batch) if learning_rate is None else learning_rate
    run_settings = {
        "model": model if isinstance(model, str) else getattr(
            model, "name", getattr(model, "__name__", type(model).__name__)),
        "model_kwargs": model_kwargs, "recipe": dataclasses.asdict(recipe), "epochs": epochs,
        "global_batch": global_batch, "steps_per_epoch": steps_per_epoch,
        "learning_rate": peak_lr, "qat": bool(qat), "mixed_precision": bool(mixed_precision),
        "image_size": train.image_size, "mode": train.mode, "augment": train.augment,
        "data": train.source.description, "classes": train.num_classes, "data_seed": train.seed,
        "seed": seed, "save_freq": save_freq, **(settings or {}),
    }
    # As run.json stores them (tuples become lists), so that a resume compares like with like.
    run_settings = json.loads(json.dumps(run_settings, default=str))

    position = None
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir)
        prepare_checkpoint_dir(checkpoint_dir, run_settings, resume, chief)
        if resume:
            position = resume_position(checkpoint_dir, steps_per_epoch, save_freq)
            if position is None:
                raise ValueError(
                    f"--resume: {checkpoint_dir} has no checkpoint yet (the run stopped before "
                    f"its first save in {checkpoint_dir / BACKUP_DIR}); start it again without "
                    "--resume"
                )
    first_epoch, skip_steps = position or (0, 0)
    log.info("recipe %s: peak learning rate %.4g at global batch %d (%s), %d epochs of %d steps",
             recipe.name, peak_lr, global_batch, recipe.source.split(":")[0], epochs,
             steps_per_epoch)

    policy = mixed_precision_policy(strategy) if mixed_precision else None
    if seed is not None:
        keras.utils.set_random_seed(seed)
    with strategy.scope():
        with _dtype_policy(policy):
            inner = _build_model(model, train, model_kwargs, strategy)
            if qat:
                from kerasnets.quantization.qat import quantize_model

                inner = quantize_model(inner)
            trained = _training_model(inner, recipe, policy)
            trained.compile(
                optimizer=recipe.optimizer(steps_per_epoch, epochs, global_batch, learning_rate),
                loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
                metrics=["accuracy"])

    dataset = strategy.distribute_datasets_from_function(
        lambda context: train.train_dataset(first_epoch, skip_steps, context))
    throughput = _Throughput(global_batch)
    where = f"epoch {first_epoch} step {skip_steps}"
    all_callbacks = []
    if checkpoint_dir is not None:
        all_callbacks.append(keras.callbacks.BackupAndRestore(
            str(checkpoint_dir / BACKUP_DIR), save_freq=save_freq, delete_checkpoint=False))
    all_callbacks += [_StartCheck(first_epoch * steps_per_epoch + skip_steps, where), throughput]
    if checkpoint_dir is not None and chief:
        all_callbacks.append(keras.callbacks.CSVLogger(str(checkpoint_dir / METRICS_CSV),
                                                       append=resume))
        if tensorboard:
            all_callbacks.append(keras.callbacks.TensorBoard(str(checkpoint_dir / TENSORBOARD_DIR)))
    all_callbacks += list(callbacks)
    if verbose == "auto":
        verbose = (1 if sys.stdout.isatty() else 2) if chief else 0
    history = trained.fit(
        dataset, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=all_callbacks,
        validation_data=eval_data.eval_dataset() if eval_data is not None else None,
        verbose=verbose)

    steps = int(trained.optimizer.iterations.numpy())
    result = FitResult(inner, {k: [float(v) for v in vals] for k, vals in history.history.items()},
                       recipe, first_epoch, skip_steps, steps, throughput.images_per_second, None)
    if checkpoint_dir is not None:
        suffix = "" if chief else f".worker-{_worker_index(strategy)}"
        result.weights_path = checkpoint_dir / FINAL_WEIGHTS.replace(".h5", f"{suffix}.h5")
        _save_weights(inner, result.weights_path)
        _write_json(checkpoint_dir / RESULT_FILE.replace(".json", f"{suffix}.json"), {
            "model": run_settings["model"], "steps": steps, "epochs": epochs,
            "resumed_at": {"epoch": first_epoch, "step": skip_steps} if resume else None,
            "images_per_second": result.images_per_second,
            "history": {k: [None if math.isnan(v) else v for v in vals]
                        for k, vals in result.history.items()},
            "weights": result.weights_path.name})
    return result
