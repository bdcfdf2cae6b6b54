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
``create_model(..., weights=path)``), ``result.json`` (steps, throughput, wall time, history)
and ``learning_curves.png`` (``kerasnets.training.curves``). With ``resume`` a run killed at any
point continues from its last checkpoint: the input pipeline (``kerasnets.data.loader``) restarts
at the exact epoch and step, so the result matches an uninterrupted run (models with dropout
draw other dropout masks after a restart: Keras does not checkpoint its random-number state).
A directory is never reused by another run: without ``resume`` it must be empty, and
``resume`` refuses a directory of another model or other settings. Everything that can be
checked (the arguments, the model's build, that the directory can be written and may be used)
is checked before ``run.json`` is written, and a new run that stops before its first checkpoint
removes what it wrote: a failed run never blocks its retry. For
``MultiWorkerMirroredStrategy`` the directory must be storage that every worker sees (as
``BackupAndRestore`` requires); only the chief writes checkpoints and logs, and each other
worker writes its final weights as ``final_weights.worker-<index>.h5``.
"""

import dataclasses
import importlib.util
import inspect
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import tensorflow as tf

from kerasnets._keras import keras, layers
from kerasnets.data import loader
from kerasnets.models.registry import create_model, get_entry
from kerasnets.training import recipes
from kerasnets.training.checkpoints import (
    BACKUP_DIR, FINAL_WEIGHTS, METRICS_CSV, RESULT_FILE, TENSORBOARD_DIR, AlreadyComplete,
    check_checkpoint_dir, check_writable, discard_unsaved_run, resume_position, write_json,
    write_run_file,
)
from kerasnets.training.curves import LEARNING_CURVES_PNG, plot_learning_curves
from kerasnets.training.distribute import (
    build_strategy, dtype_policy, is_chief, mixed_precision_policy, worker_index,
)

# Steps timed at the start of a run before throughput is measured (tracing, warm-up).
_THROUGHPUT_WARMUP_STEPS = 1

log = logging.getLogger("kerasnets.training.fit")

__all__ = ["AlreadyComplete", "FitResult", "check_model_kwargs", "fit"]

# What fit trains: a registry name, a function that builds a Keras model, or a Keras model.
ModelSpec = Union[str, Callable[[], "keras.Model"], "keras.Model"]


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

    model: "keras.Model"
    history: Dict[str, List[float]]
    recipe: recipes.Recipe
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


def check_model_kwargs(model: ModelSpec, model_kwargs: Dict[str, object]) -> None:
    """Raises ``ValueError`` naming the ``model_kwargs`` that the builder of the registry name
    ``model`` does not take, and the ones it takes."""
    if not isinstance(model, str):
        return
    entry = get_entry(model)
    parameters = inspect.signature(entry.builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    from_data = {"input_shape", "classes"}
    allowed = sorted(set(parameters) - set(entry.fixed_kwargs) - from_data)
    unknown = sorted(set(model_kwargs) - set(allowed))
    if unknown:
        note = " (input_shape and classes come from the data)" if set(unknown) & from_data else ""
        raise ValueError(f"--model-arg: {model!r} takes no argument {', '.join(unknown)}{note}; "
                         f"its arguments: {', '.join(allowed)}")


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


def _eval_input(train, eval_data):
    """Returns ``eval_data`` as a ``loader.Input`` read like ``train`` (or None) after checking
    both inputs."""
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
    return eval_data


def _recipe_of(model, recipe):
    """Returns the ``Recipe`` of a run: ``recipe``, else the model family's, else finetune."""
    if recipe is None:
        recipe = recipes.default_recipe(get_entry(model).family) if isinstance(model, str) \
            else "finetune"
    return recipes.get_recipe(recipe)


def _check_options(model, recipe, epochs, save_freq, learning_rate, checkpoint_dir, resume,
                   tensorboard, mixed_precision, qat):
    """Raises ``ValueError`` naming the first of ``fit``'s options that is not allowed."""
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


def _run_settings(model, model_kwargs, recipe, epochs, train, peak_lr, qat, mixed_precision,
                  seed, save_freq, settings):
    """Returns the settings recorded in ``run.json``, as JSON stores them (tuples become
    lists), so that a resume compares like with like."""
    name = model if isinstance(model, str) else getattr(
        model, "name", getattr(model, "__name__", type(model).__name__))
    run_settings = {
        "model": name, "model_kwargs": model_kwargs, "recipe": dataclasses.asdict(recipe),
        "epochs": epochs, "global_batch": train.batch_size,
        "steps_per_epoch": train.steps_per_epoch, "learning_rate": peak_lr, "qat": bool(qat),
        "mixed_precision": bool(mixed_precision), "image_size": train.image_size,
        "mode": train.mode, "augment": train.augment, "data": train.source.description,
        "classes": train.num_classes, "data_seed": train.seed, "seed": seed,
        "save_freq": save_freq, **(settings or {}),
    }
    return json.loads(json.dumps(run_settings, default=str))


def _start_position(checkpoint_dir, run_settings, resume, steps_per_epoch, save_freq):
    """Returns ``(epoch, step)`` where the run starts, after checking that it may use
    ``checkpoint_dir`` (it writes nothing)."""
    if checkpoint_dir is None:
        return 0, 0
    check_writable(checkpoint_dir)
    check_checkpoint_dir(checkpoint_dir, run_settings, resume)
    if not resume:
        return 0, 0
    position = resume_position(checkpoint_dir, steps_per_epoch, save_freq)
    if position is None:
        raise ValueError(
            f"--resume: {checkpoint_dir} has no checkpoint yet (the run stopped before its "
            f"first save in {checkpoint_dir / BACKUP_DIR}); start it again without --resume"
        )
    return position


def _set_bn_momentum(model, momentum):
    """Sets the momentum of every BatchNormalization layer of ``model``, nested models too."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _set_bn_momentum(layer, momentum)
        elif isinstance(layer, layers.BatchNormalization):
            layer.momentum = momentum


def _compiled_model(model, train, model_kwargs, strategy, recipe, epochs, learning_rate, qat,
                    policy, bn_momentum=None):
    """Returns ``(model, training model)``: the model built under ``strategy`` (its QAT form
    with ``qat``), and the compiled model that trains it (``_training_model``)."""
    with strategy.scope(), dtype_policy(policy):
        inner = _build_model(model, train, model_kwargs, strategy)
        if bn_momentum is not None:
            _set_bn_momentum(inner, bn_momentum)
        if qat:
            from kerasnets.quantization.qat import quantize_model

            inner = quantize_model(inner)
        trained = _training_model(inner, recipe, policy)
        trained.compile(
            optimizer=recipe.optimizer(train.steps_per_epoch, epochs, train.batch_size,
                                       learning_rate),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
            metrics=["accuracy"])
    return inner, trained


def _run_callbacks(checkpoint_dir, chief, resume, tensorboard, save_freq, start_step, where,
                   throughput):
    """Returns the callbacks ``fit`` always adds: checkpoints, the start check, ``throughput``,
    the metrics log and TensorBoard (the chief's, under ``checkpoint_dir``)."""
    added = []
    if checkpoint_dir is not None:
        added.append(keras.callbacks.BackupAndRestore(
            str(checkpoint_dir / BACKUP_DIR), save_freq=save_freq, delete_checkpoint=False))
    # The throughput callback before the loggers: it adds images_per_second to the epoch logs.
    added += [_StartCheck(start_step, where), throughput]
    if checkpoint_dir is not None and chief:
        added.append(keras.callbacks.CSVLogger(str(checkpoint_dir / METRICS_CSV), append=resume))
        if tensorboard:
            added.append(keras.callbacks.TensorBoard(str(checkpoint_dir / TENSORBOARD_DIR)))
    return added


def _write_result(result, checkpoint_dir, strategy, model_name, epochs, resume, wall_seconds):
    """Writes the final weights and ``result.json`` (``.worker-<index>`` files on workers
    other than the chief), and the chief's ``learning_curves.png``; sets
    ``result.weights_path``. ``wall_seconds``: this call's time (of a resumed run, the part
    since the resume)."""
    suffix = "" if is_chief(strategy) else f".worker-{worker_index(strategy)}"
    result.weights_path = checkpoint_dir / FINAL_WEIGHTS.replace(".h5", f"{suffix}.h5")
    _save_weights(result.model, result.weights_path)
    write_json(checkpoint_dir / RESULT_FILE.replace(".json", f"{suffix}.json"), {
        "model": model_name, "steps": result.steps, "epochs": epochs,
        "resumed_at": ({"epoch": result.initial_epoch, "step": result.initial_step}
                       if resume else None),
        "images_per_second": result.images_per_second,
        "wall_seconds": round(wall_seconds, 1),
        "history": {k: [None if math.isnan(v) else v for v in vals]
                    for k, vals in result.history.items()},
        "weights": result.weights_path.name})
    if not suffix and (checkpoint_dir / METRICS_CSV).is_file():
        plot_learning_curves(checkpoint_dir / METRICS_CSV, checkpoint_dir / LEARNING_CURVES_PNG,
                             f"{model_name}: {result.steps} steps")


def _keras_fit(trained, strategy, train, eval_data, epochs, start, callbacks, verbose,
               new_run_dir):
    """Returns the Keras ``History`` of training ``trained`` from ``start`` ``(epoch, step)``.

    When training fails, the files of the new run in ``new_run_dir`` (None: none) are removed
    if it never saved a checkpoint: it has nothing to resume, and they must not block a retry.
    """
    first_epoch, skip_steps = start
    try:
        return trained.fit(
            strategy.distribute_datasets_from_function(
                lambda context: train.train_dataset(first_epoch, skip_steps, context)),
            epochs=epochs, steps_per_epoch=train.steps_per_epoch, callbacks=callbacks,
            validation_data=eval_data.eval_dataset() if eval_data is not None else None,
            verbose=verbose)
    except BaseException:
        if new_run_dir is not None and discard_unsaved_run(new_run_dir):
            log.info("the run stopped before its first checkpoint; removed its files from %s",
                     new_run_dir)
        raise


def fit(model: ModelSpec, train: loader.Input,
        eval_data: Optional[Union[loader.Input, loader.DataSource]] = None, *,
        recipe: Optional[Union[str, recipes.Recipe]] = None, epochs: Optional[int] = None,
        strategy: Optional[Union[str, tf.distribute.Strategy]] = None,
        checkpoint_dir: Optional[Union[str, Path]] = None, resume: bool = False,
        qat: bool = False, learning_rate: Optional[float] = None,
        model_kwargs: Optional[Dict[str, object]] = None, mixed_precision: bool = False,
        bn_momentum: Optional[float] = None,
        save_freq: Union[str, int] = "epoch", seed: Optional[int] = None,
        verbose: Union[str, int] = "auto", tensorboard: bool = False,
        settings: Optional[Dict[str, object]] = None,
        callbacks: Sequence["keras.callbacks.Callback"] = ()) -> "FitResult":
    """Returns the ``FitResult`` of training ``model`` on ``train`` with a recipe.

    Args:
      model: a registry name (built with ``train``'s image size and classes and
        ``model_kwargs``), a function returning a Keras model, or a Keras model built under
        ``strategy`` (any model, for the default strategy). Names and functions are built
        inside ``strategy.scope()``.
      train: a ``kerasnets.data.loader.Input`` (``loader.from_image_set`` for images already
        decoded in memory).
      eval_data: a ``loader.Input``, or a ``loader.DataSource`` read like ``train``;
        evaluated after every epoch.
      recipe: a ``kerasnets.training.recipes`` name or ``Recipe``; by default the recipe of the
        model's family for a registry name, else ``"finetune"``.
      epochs: total epochs of the run; by default the recipe's.
      strategy: a ``tf.distribute.Strategy`` or a ``build_strategy`` name (default ``"auto"``).
      checkpoint_dir: where checkpoints, logs and final weights go (see the module docstring);
        None trains without checkpoints and writes nothing.
      resume: continue the run in ``checkpoint_dir`` from its last checkpoint.
      qat: train the ``kerasnets.quantization.qat.quantize_model`` form of the model.
      learning_rate: the peak learning rate; by default the recipe's, scaled to the global
        batch size.
      model_kwargs: builder arguments of a registry name.
      mixed_precision: build a registry name or function under ``mixed_precision_policy``.
      bn_momentum: the momentum of every BatchNormalization layer's moving mean and variance
        (in (0, 1); default: the builder's, 0.999 in the Keras MobileNets). A slow one lags
        behind weights that move fast: in 15-epoch CIFAR runs at rate 0.1 the evaluated model
        stayed at chance for 12 epochs. 0.9 is Torch's default, the one the CIFAR ResNet and
        DenseNet schedules of recipe ``mobilenet_cifar`` were run with.
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
    started = time.perf_counter()
    eval_data = _eval_input(train, eval_data)
    if not isinstance(strategy, tf.distribute.Strategy):
        strategy = build_strategy(strategy or "auto")
    recipe = _recipe_of(model, recipe)
    epochs = recipe.epochs if epochs is None else epochs
    _check_options(model, recipe, epochs, save_freq, learning_rate, checkpoint_dir, resume,
                   tensorboard, mixed_precision, qat)
    if bn_momentum is not None and not (isinstance(bn_momentum, (int, float))
                                        and 0 < bn_momentum < 1):
        raise ValueError(f"`bn_momentum` must be a number in (0, 1); received "
                         f"bn_momentum={bn_momentum!r}")
    if bn_momentum is not None:  # recorded only when set: earlier runs resume as they were
        settings = {**(settings or {}), "bn_momentum": bn_momentum}
    model_kwargs = dict(model_kwargs or {})
    check_model_kwargs(model, model_kwargs)
    chief = is_chief(strategy)
    peak_lr = recipe.learning_rate(train.batch_size) if learning_rate is None else learning_rate
    run_settings = _run_settings(model, model_kwargs, recipe, epochs, train, peak_lr, qat,
                                 mixed_precision, seed, save_freq, settings)
    checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
    first_epoch, skip_steps = _start_position(checkpoint_dir, run_settings, resume,
                                              train.steps_per_epoch, save_freq)
    log.info("recipe %s: peak learning rate %.4g at global batch %d (%s), %d epochs of %d steps",
             recipe.name, peak_lr, train.batch_size, recipe.source.split(":")[0], epochs,
             train.steps_per_epoch)

    if seed is not None:
        keras.utils.set_random_seed(seed)
    policy = mixed_precision_policy(strategy) if mixed_precision else None
    inner, trained = _compiled_model(model, train, model_kwargs, strategy, recipe, epochs,
                                     learning_rate, qat, policy, bn_momentum)
    # Only now, with every check passed and the model built, does the run claim the directory.
    new_run = checkpoint_dir is not None and chief and not resume
    if new_run:
        write_run_file(checkpoint_dir, run_settings)
    throughput = _Throughput(train.batch_size)
    all_callbacks = _run_callbacks(checkpoint_dir, chief, resume, tensorboard, save_freq,
                                   first_epoch * train.steps_per_epoch + skip_steps,
                                   f"epoch {first_epoch} step {skip_steps}", throughput)
    all_callbacks += list(callbacks)
    if verbose == "auto":
        verbose = (1 if sys.stdout.isatty() else 2) if chief else 0
    history = _keras_fit(trained, strategy, train, eval_data, epochs, (first_epoch, skip_steps),
                         all_callbacks, verbose, checkpoint_dir if new_run else None)

    result = FitResult(inner, {k: [float(v) for v in vals] for k, vals in history.history.items()},
                       recipe, first_epoch, skip_steps, int(trained.optimizer.iterations.numpy()),
                       throughput.images_per_second, None)
    if checkpoint_dir is not None:
        _write_result(result, checkpoint_dir, strategy, run_settings["model"], epochs, resume,
                      time.perf_counter() - started)
    return result
