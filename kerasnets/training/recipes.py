"""Training recipes of the papers, as named presets: optimizer, schedule, weight decay, EMA.

Each ``Recipe`` records the setting a paper trained with, at the batch size the paper used
(``reference_batch``); ``Recipe.learning_rate(global_batch)`` scales the learning rate linearly
with the global batch (Goyal et al. 2017, "Accurate, Large Minibatch SGD"), so the same preset
serves one CPU and a TPU pod. Where a paper is silent, the value comes from the code the paper
points to, and the recipe's ``source`` says so.

Weight decay is the papers' L2 regularization: ``0.5 * weight_decay * sum(w ** 2)`` added to the
loss, i.e. ``grad += weight_decay * w`` (TensorFlow's ``l2_regularizer`` of TF-Slim, and
Torch's SGD ``weightDecay``), not the decoupled decay of Keras optimizers' ``weight_decay``,
which with momentum 0.9 acts about ten times weaker.

    recipe = get_recipe("mobilenet_v2")
    recipe.learning_rate(global_batch=256)      # 0.045 * 256 / 96
    optimizer = recipe.optimizer(steps_per_epoch=5000, epochs=300, global_batch=256)
"""

import dataclasses
import difflib
from typing import Any, List, Optional, Tuple, Union

import tensorflow as tf

from kerasnets._keras import keras

OPTIMIZERS = ("rmsprop", "sgd", "adam")
SCHEDULES = ("exponential", "step", "cosine", "constant")
DECAY_TARGETS = ("kernels", "kernels_except_depthwise", "all")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A named training preset (see the module docstring; ``source`` cites where it is from).

    Attributes:
      optimizer: ``"rmsprop"`` (``rho``, ``momentum``, ``epsilon``), ``"sgd"`` (``momentum``,
        ``nesterov``) or ``"adam"``.
      base_lr: learning rate at ``reference_batch``.
      schedule: ``"exponential"`` (times ``decay_rate`` every ``decay_epochs``, staircase),
        ``"step"`` (divided by 10 at each fraction ``drops`` of the epochs), ``"cosine"`` or
        ``"constant"``.
      weight_decay: L2 coefficient; ``decay_on`` says which variables: ``"kernels"``
        (conv/dense kernels), ``"kernels_except_depthwise"`` or ``"all"`` trainable variables.
      label_smoothing: of the cross-entropy loss.
      warmup_epochs: linear warm-up from 0 to the scheduled rate.
      ema: decay of the exponential moving average of the weights (used as the final weights),
        ``None`` for none.
      epochs: the paper's number of epochs, ``None`` where it does not say.
      augment: the ``kerasnets.data.loader`` augmentation.
    """

    name: str
    source: str
    optimizer_name: str
    base_lr: float
    reference_batch: int
    schedule: str
    decay_rate: float = 1.0
    decay_epochs: float = 1.0
    drops: Tuple[float, ...] = ()
    momentum: float = 0.9
    rho: float = 0.9
    epsilon: float = 1e-7
    nesterov: bool = False
    weight_decay: float = 0.0
    decay_on: str = "kernels"
    label_smoothing: float = 0.0
    warmup_epochs: float = 0.0
    ema: Optional[float] = None
    epochs: Optional[int] = None
    augment: Optional[str] = None

    def __post_init__(self):
        checks = [
            ("optimizer_name", self.optimizer_name in OPTIMIZERS, f"one of {OPTIMIZERS}"),
            ("schedule", self.schedule in SCHEDULES, f"one of {SCHEDULES}"),
            ("decay_on", self.decay_on in DECAY_TARGETS, f"one of {DECAY_TARGETS}"),
            ("base_lr", _number(self.base_lr) and self.base_lr > 0, "a number > 0"),
            ("reference_batch", isinstance(self.reference_batch, int) and self.reference_batch > 0,
             "an integer > 0"),
            ("decay_rate", _number(self.decay_rate) and 0 < self.decay_rate <= 1, "in (0, 1]"),
            ("decay_epochs", _number(self.decay_epochs) and self.decay_epochs > 0, "> 0"),
            ("drops", all(_number(f) and 0 < f < 1 for f in self.drops), "fractions in (0, 1)"),
            ("weight_decay", _number(self.weight_decay) and self.weight_decay >= 0, ">= 0"),
            ("label_smoothing", _number(self.label_smoothing) and 0 <= self.label_smoothing < 1,
             "in [0, 1)"),
            ("warmup_epochs", _number(self.warmup_epochs) and self.warmup_epochs >= 0, ">= 0"),
            ("ema", self.ema is None or (_number(self.ema) and 0 < self.ema < 1),
             "None or in (0, 1)"),
            ("epochs", self.epochs is None or (isinstance(self.epochs, int) and self.epochs > 0),
             "None or an integer > 0"),
            ("augment", self.augment in (None, "imagenet", "cifar"),
             "None, 'imagenet' or 'cifar'"),
        ]
        for field, ok, allowed in checks:
            if not ok:
                raise ValueError(f"recipe {self.name!r}: `{field}` must be {allowed}; received "
                                 f"{field}={getattr(self, field)!r}")

    def learning_rate(self, global_batch: int) -> float:
        """Returns ``base_lr`` scaled linearly from ``reference_batch`` to ``global_batch``."""
        return self.base_lr * global_batch / self.reference_batch

    def schedule_fn(self, steps_per_epoch: int, epochs: int, global_batch: int,
                    learning_rate: Optional[float] = None
                    ) -> keras.optimizers.schedules.LearningRateSchedule:
        """Returns the Keras learning-rate schedule of a run (``learning_rate`` replaces the
        scaled peak rate when given)."""
        peak = self.learning_rate(global_batch) if learning_rate is None else learning_rate
        total = steps_per_epoch * epochs
        if self.schedule == "exponential":
            schedule = keras.optimizers.schedules.ExponentialDecay(
                peak, max(1, round(self.decay_epochs * steps_per_epoch)), self.decay_rate,
                staircase=True)
        elif self.schedule == "step":
            # At the steps of the fractions of the run (the papers' epochs 150/225 of 300).
            boundaries = sorted({max(1, round(f * total)) for f in self.drops})
            schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
                boundaries, [peak * 0.1 ** i for i in range(len(boundaries) + 1)])
        elif self.schedule == "cosine":
            schedule = keras.optimizers.schedules.CosineDecay(peak, max(1, total))
        else:
            schedule = keras.optimizers.schedules.ExponentialDecay(peak, 1, 1.0)  # constant
        warmup = round(self.warmup_epochs * steps_per_epoch)
        return LinearWarmup(schedule, warmup) if warmup else schedule

    def optimizer(self, steps_per_epoch: int, epochs: int, global_batch: int,
                  learning_rate: Optional[float] = None) -> keras.optimizers.Optimizer:
        """Returns a new Keras optimizer of this recipe, with its schedule and EMA."""
        schedule = self.schedule_fn(steps_per_epoch, epochs, global_batch, learning_rate)
        ema = {"use_ema": True, "ema_momentum": self.ema} if self.ema else {}
        if self.optimizer_name == "rmsprop":
            cls = RMSpropEMA if self.ema else keras.optimizers.RMSprop
            return cls(schedule, rho=self.rho, momentum=self.momentum, epsilon=self.epsilon, **ema)
        if self.optimizer_name == "sgd":
            cls = SGDEMA if self.ema else keras.optimizers.SGD
            return cls(schedule, momentum=self.momentum, nesterov=self.nesterov, **ema)
        cls = AdamEMA if self.ema else keras.optimizers.Adam
        return cls(schedule, epsilon=self.epsilon, **ema)

    def decayed_variables(self, model: keras.Model) -> List[tf.Variable]:
        """Returns the trainable variables of ``model`` that weight decay applies to."""
        if self.decay_on == "all":
            return list(model.trainable_variables)
        names = {"kernel"} if self.decay_on == "kernels_except_depthwise" else {
            "kernel", "depthwise_kernel"}
        return [v for v in model.trainable_variables
                if v.name.rsplit("/", 1)[-1].split(":")[0] in names]

    def override(self, **changes: Any) -> "Recipe":
        """Returns a copy of this recipe with ``changes`` (field names as in the dataclass)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown recipe field(s) {unknown}; fields: "
                             f"{[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **changes)


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@keras.utils.register_keras_serializable(package="kerasnets")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Returns ``schedule(step)``, ramped linearly from 0 over the first ``warmup_steps``
    (gradual warm-up of Goyal et al. 2017, sec. 2.2)."""

    def __init__(self, schedule, warmup_steps):
        super().__init__()
        self.schedule = schedule
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        scheduled = tf.cast(self.schedule(step), tf.float32)
        ramp = tf.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
        return scheduled * ramp

    def get_config(self):
        return {"schedule": keras.optimizers.schedules.serialize(self.schedule),
                "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.optimizers.schedules.deserialize(config["schedule"])
        return cls(**config)


class _WarmStartEMA:
    """EMA of the weights with TensorFlow's ``ExponentialMovingAverage(num_updates=step)``
    decay, ``min(ema_momentum, (1 + step) / (10 + step))``, as the MobileNetV3 training code
    used: Keras' fixed decay would keep the random initial weights in the average for
    thousands of steps."""

    @property
    def ema_momentum(self):
        step = tf.cast(self.iterations, tf.float32)
        return tf.minimum(self._ema_decay, (1.0 + step) / (10.0 + step))

    @ema_momentum.setter
    def ema_momentum(self, value):
        self._ema_decay = value

    def get_config(self):
        config = super().get_config()
        config["ema_momentum"] = self._ema_decay
        return config


@keras.utils.register_keras_serializable(package="kerasnets")
class RMSpropEMA(_WarmStartEMA, keras.optimizers.RMSprop):
    """``keras.optimizers.RMSprop`` whose EMA warms up like TensorFlow's (see ``_WarmStartEMA``)."""


@keras.utils.register_keras_serializable(package="kerasnets")
class SGDEMA(_WarmStartEMA, keras.optimizers.SGD):
    """``keras.optimizers.SGD`` whose EMA warms up like TensorFlow's (see ``_WarmStartEMA``)."""


@keras.utils.register_keras_serializable(package="kerasnets")
class AdamEMA(_WarmStartEMA, keras.optimizers.Adam):
    """``keras.optimizers.Adam`` whose EMA warms up like TensorFlow's (see ``_WarmStartEMA``)."""


# RMSProp as in Inception-v3's training code (tensorflow/models inception_train.py, and TF-Slim
# train_image_classifier.py defaults): decay 0.9, momentum 0.9, epsilon 1.0.
_INCEPTION_RMSPROP = dict(optimizer_name="rmsprop", rho=0.9, momentum=0.9, epsilon=1.0)

RECIPES = {r.name: r for r in (
    Recipe(
        "mobilenet_v1",
        "Howard et al. 2017, MobileNets, sec. 4 (RMSProp as Inception-v3, no label smoothing, "
        "little or no weight decay on depthwise filters); rate 0.045, x0.98 per epoch, batch 96 "
        "from MobileNetV2 sec. 6.1 ('following MobileNetV1 setup'); decay 4e-5 off depthwise "
        "kernels as TF-Slim mobilenet_v1 (regularize_depthwise=False)",
        base_lr=0.045, reference_batch=96, schedule="exponential", decay_rate=0.98,
        weight_decay=4e-5, decay_on="kernels_except_depthwise", augment="imagenet",
        **_INCEPTION_RMSPROP),
    Recipe(
        "mobilenet_v2",
        "Sandler et al. 2018, MobileNetV2, sec. 6.1: RMSProp decay 0.9 momentum 0.9, weight "
        "decay 4e-5, rate 0.045 x0.98 per epoch, batch 96 (16 asynchronous workers); epsilon 1.0 "
        "and depthwise kernels not decayed as TF-Slim's mobilenet training_scope",
        base_lr=0.045, reference_batch=96, schedule="exponential", decay_rate=0.98,
        weight_decay=4e-5, decay_on="kernels_except_depthwise", augment="imagenet",
        **_INCEPTION_RMSPROP),
    Recipe(
        "mobilenet_v3",
        "Howard et al. 2019, Searching for MobileNetV3, sec. 6.1: synchronous 4x4 TPU pod, "
        "RMSProp momentum 0.9, rate 0.1 at batch 4096 decayed by 0.01 (read as x0.99) every 3 "
        "epochs, dropout 0.8 keep (the models' dropout_rate=0.2), L2 1e-5, Inception "
        "preprocessing, EMA 0.9999; RMSProp decay/epsilon as Inception-v3",
        base_lr=0.1, reference_batch=4096, schedule="exponential", decay_rate=0.99,
        decay_epochs=3, weight_decay=1e-5, decay_on="kernels_except_depthwise", ema=0.9999,
        augment="imagenet", **_INCEPTION_RMSPROP),
    Recipe(
        "densenet_cifar",
        "Huang et al. 2017, Densely Connected Convolutional Networks, sec. 4.2: SGD, Nesterov "
        "momentum 0.9, batch 64, 300 epochs, rate 0.1 divided by 10 at 50% and 75% of the "
        "epochs, weight decay 1e-4 (Torch SGD: every parameter); C10+ augmentation (sec. 4.1)",
        optimizer_name="sgd", base_lr=0.1, reference_batch=64, schedule="step",
        drops=(0.5, 0.75), momentum=0.9, nesterov=True, weight_decay=1e-4, decay_on="all",
        epochs=300, augment="cifar"),
    Recipe(
        "densenet_imagenet",
        "Huang et al. 2017, Densely Connected Convolutional Networks, sec. 4.2: 90 epochs, batch "
        "256, rate 0.1 divided by 10 at epochs 30 and 60, Nesterov momentum 0.9, weight decay "
        "1e-4 (Torch SGD: every parameter); fb.resnet.torch augmentation (random-resized crop, "
        "flip)",
        optimizer_name="sgd", base_lr=0.1, reference_batch=256, schedule="step",
        drops=(1 / 3, 2 / 3), momentum=0.9, nesterov=True, weight_decay=1e-4, decay_on="all",
        epochs=90, augment="imagenet"),
    Recipe(
        "mobilenet_cifar",
        "kerasnets' CIFAR-10-from-scratch setting for the mobile models (no paper trains them on "
        "CIFAR): the common CIFAR ResNet/DenseNet schedule (He et al. 2016 sec. 4.2, Huang et "
        "al. 2017 sec. 4.2: SGD momentum 0.9, rate 0.1 at batch 128, crop-and-flip), with "
        "Nesterov momentum, cosine decay (Loshchilov & Hutter 2017) after a 1-epoch warm-up, and "
        "L2 5e-4 on the non-depthwise kernels (as MobileNetV1/V2: depthwise filters have few "
        "parameters and are not decayed)",
        optimizer_name="sgd", base_lr=0.1, reference_batch=128, schedule="cosine",
        momentum=0.9, nesterov=True, weight_decay=5e-4, decay_on="kernels_except_depthwise",
        warmup_epochs=1, augment="cifar"),
    Recipe(
        "finetune",
        "kerasnets' short fine-tuning default (not a paper setting): Adam, cosine decay from "
        "2e-3 at batch 64, no weight decay, CIFAR augmentation",
        optimizer_name="adam", base_lr=2e-3, reference_batch=64, schedule="cosine",
        augment="cifar"),
)}

# The recipe of each registry family when none is named.
FAMILY_RECIPES = {
    "mobilenet_v1": "mobilenet_v1",
    "mobilenet_v2": "mobilenet_v2",
    "mobilenet_v3": "mobilenet_v3",
    "densenet": "densenet_imagenet",
    "densenet_cifar": "densenet_cifar",
}


def list_recipes() -> List[str]:
    """Returns the sorted names of the recipes."""
    return sorted(RECIPES)


def get_recipe(name: Union[str, "Recipe"]) -> "Recipe":
    """Returns the ``Recipe`` named ``name``; an unknown name raises ``ValueError`` listing them."""
    if isinstance(name, Recipe):
        return name
    if name not in RECIPES:
        close = difflib.get_close_matches(str(name), list(RECIPES), n=2, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown recipe {name!r}.{hint} Known recipes: {list_recipes()}")
    return RECIPES[name]


def default_recipe(family: str) -> str:
    """Returns the recipe name for a registry ``family`` (``"finetune"`` for unknown families)."""
    return FAMILY_RECIPES.get(family, "finetune")
