"""Early-exit (anytime) networks: multi-exit DenseNet and MSDNet, joint training, the
confidence-threshold exit policy, threshold calibration for a budget, and the split of a
multi-exit model into stages.

A multi-exit model has one classifier ("exit") after each of several stages and returns one output
per exit, in order. At inference an image stops at the first exit whose confidence (its largest
softmax probability) reaches that exit's threshold; a hard image runs on to the next stage. That
is the "budgeted batch classification" of MSDNet (Huang et al., 2018, "Multi-Scale Dense Networks
for Resource Efficient Image Classification", ICLR, arXiv:1703.09844); running every stage and
reading every exit is its "anytime prediction".

- ``MultiExitDenseNetCifar``: the CIFAR DenseNet / DenseNet-BC of ``kerasnets.models.densenet`` with a
  classifier (BN-ReLU-global average pool-dense, the DenseNet head) after each dense block or at
  any dense layer (``exits``). The paper's baseline "DenseNet with intermediate classifiers".
- ``MSDNetCifar``: MSDNet's CIFAR network: three scales of dense features, a classifier on the
  coarsest scale after every block (``MSDNET_CIFAR`` gives the paper's two settings).
- ``compile_joint``: training on the weighted sum of the per-exit losses (``joint_loss_weights``).
- ``exit_decisions``/``simulate_exits``: the policy; ``calibrate_thresholds`` picks per-exit
  thresholds for a target average cost (MACs or measured seconds) on held-out outputs.
- ``split_stages``: the stage models (stage k takes stage k-1's features, returns its own
  features and its exit's output) that ``tflite/early_exit.py`` converts and runs with LiteRT.

Threshold semantics: an exit other than the last answers when ``max softmax >= threshold``;
a threshold of exactly 1.0 means "never answer here" (float32 softmax rounds very confident
outputs to exactly 1.0, so ``>= 1.0`` alone would still let those exit), and 0 answers every
image. The last exit always answers, so a policy has one threshold per *early* exit.
"""

import collections
import dataclasses
import math
import numbers
from typing import Tuple

import numpy as np
import tensorflow as tf

from kerasnets._keras import keras, layers
from kerasnets.layers.blocks import BNConfig, activation_layer, batch_norm
from kerasnets.models.convention import check_common_args, check_positive_int, model_input
from kerasnets.models.densenet import BN as DENSENET_BN
from kerasnets.models.densenet import (
    CIFAR10_MEAN, CIFAR10_STD, CIFAR_NUM_BLOCKS, DenseNetCifar, _check_cifar_depth,
)
from kerasnets.models.profiler import layer_macs
from kerasnets.models.registry import register_model
from kerasnets.models.weights import finish_model

# ------------------------------------------------------------------------------------------------
# MSDNet, CIFAR configuration (paper section 5 "Anytime prediction" / "Budgeted batch
# classification" on CIFAR, and the official code gaohuang/MSDNet, opts.lua and README):
# 3 scales (32x32, 16x16, 8x8), a first layer of 16 maps at the finest scale, growth rate 6,
# bottleneck 1x1 convs, transitions that halve the maps (reduction 0.5) where the finest scale is
# dropped ("prune max"), and a classifier on the coarsest scale after every block.
#
# One row per scale, finest first: the growth factor multiplies the channels of the scale
# (grFactor 1-2-4) and the bottleneck factor caps each 1x1 conv at factor x its 3x3 conv's
# output maps (bnFactor 1-2-4).
MSDScale = collections.namedtuple("MSDScale", "growth_factor bottleneck_factor")
MSDNET_CIFAR_SCALES = (
    MSDScale(1, 1),  # 32x32
    MSDScale(2, 2),  # 16x16
    MSDScale(4, 4),  # 8x8
)
MSDNET_CIFAR_STEM_CHANNELS = 16     # nChannels on CIFAR
MSDNET_CIFAR_GROWTH_RATE = 6        # growthRate (maps each layer adds at the finest scale)
MSDNET_REDUCTION = 0.5              # reduction (theta) of the transition layers
MSDNET_CIFAR_CLASSIFIER_CHANNELS = 128  # the CIFAR classifier: two 3x3 stride-2 convs of 128 maps

# Layers per block: the first block has ``base`` layers; later blocks ``step`` ("even") or
# ``step * i + 1`` for the i-th later block ("lin_grow").
MSDNetConfig = collections.namedtuple("MSDNetConfig", "blocks step_mode step base")
MSDNET_CIFAR = {
    # Anytime prediction: 10 classifiers, one every other layer after the 4th (22 layers).
    "msdnet_cifar": MSDNetConfig(10, "even", 2, 4),
    # Budgeted batch classification: 7 classifiers with linearly growing spans (28 layers).
    "msdnet_cifar_budget": MSDNetConfig(7, "lin_grow", 1, 1),
}
STEP_MODES = ("even", "lin_grow")

MSD_BN = BNConfig(epsilon=1e-5, momentum=0.9)  # PyTorch/Torch BatchNorm defaults

# The largest threshold calibration picks: below the largest float32 under 1 (1 - 2**-24), so
# that confidences that rounded to 1.0 or just under it still exit, and never 1.0 itself, which
# means "never exit here".
MAX_EXIT_THRESHOLD = 1.0 - 1e-7

JOINT_WEIGHTS = ("uniform", "linear")


# ------------------------------------------------------------------------------------------------
# Multi-exit DenseNet (CIFAR)


def _check_exit_points(exits, per_block):
    """Returns the early exits as sorted ``(block, layer)`` pairs (1-based) after validation."""
    blocks = len(per_block)
    if not isinstance(exits, (list, tuple)):
        raise ValueError(
            "`exits` must be a list of early exit points: a dense block number (exit after its "
            f"last layer) or a (block, layer) pair; received exits={exits!r}"
        )
    points = []
    for point in exits:
        if isinstance(point, numbers.Integral) and not isinstance(point, bool):
            point = (int(point), per_block[int(point) - 1] if 1 <= point <= blocks else 0)
        ok = (isinstance(point, (list, tuple)) and len(point) == 2
              and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in point)
              and 1 <= point[0] <= blocks and 1 <= point[1] <= per_block[point[0] - 1])
        if not ok:
            raise ValueError(
                f"`exits` entries must be a block in 1..{blocks} or a (block, layer) pair with "
                f"layer in 1..{per_block[0]} (this network has {blocks} dense blocks of "
                f"{per_block[0]} layers); received exits={exits!r}"
            )
        points.append((int(point[0]), int(point[1])))
    if (blocks, per_block[-1]) in points:
        raise ValueError(
            f"`exits` lists early exits only; the end of the last block ({blocks}) is always the "
            f"final exit (the network's own classifier); received exits={exits!r}"
        )
    if len(set(points)) != len(points) or not points:
        raise ValueError(
            f"`exits` must name at least one early exit point, each once; received exits={exits!r}"
        )
    return sorted(points)


def MultiExitDenseNetCifar(depth=100, growth_rate=12, bottleneck=True, compression=0.5,
                           exits=(1, 2), weights=None, input_tensor=None, input_shape=None,
                           classes=10, classifier_activation="softmax", dropout_rate=0.0,
                           include_preprocessing=False):
    """Returns a multi-exit CIFAR DenseNet ``keras.Model``: one output per exit, in order.

    The network is ``kerasnets.DenseNetCifar`` (Huang et al., 2017, section 4; same layers and
    names), with an early classifier at each point of ``exits``: BN-ReLU-global average
    pool-dense, the DenseNet head, named ``exit{k}_bn``, ``exit{k}_relu``, ``exit{k}_pool``,
    ``exit{k}_predictions``. The last exit is the network's own classifier (``predictions``).

    Args:
      depth, growth_rate, bottleneck, compression, dropout_rate, include_preprocessing,
        weights, input_tensor, input_shape, classes, classifier_activation: as
        ``DenseNetCifar`` (``weights`` must come from a multi-exit model of the same arguments).
      exits: early exit points: a dense block number (after its last layer; default: after
        blocks 1 and 2) or a ``(block, layer)`` pair (after that dense layer), both 1-based.
    """
    check_common_args(weights, True, None, classes, classifier_activation, dropout_rate)
    per_block = (_check_cifar_depth(depth, bottleneck),) * CIFAR_NUM_BLOCKS
    points = _check_exit_points(exits, per_block)
    backbone = DenseNetCifar(depth=depth, growth_rate=growth_rate, bottleneck=bottleneck,
                             compression=compression, include_top=True, weights=None,
                             input_tensor=input_tensor, input_shape=input_shape, classes=classes,
                             classifier_activation=classifier_activation,
                             dropout_rate=dropout_rate,
                             include_preprocessing=include_preprocessing)
    outputs = []
    for k, (block, layer) in enumerate(points, start=1):
        # Dense blocks are named conv2, conv3, ... (keras.applications.DenseNet's names).
        x = backbone.get_layer(f"conv{block + 1}_block{layer}_concat").output
        x = batch_norm(x, f"exit{k}_bn", DENSENET_BN)
        x = activation_layer("relu", f"exit{k}_relu")(x)
        x = layers.GlobalAveragePooling2D(name=f"exit{k}_pool")(x)
        outputs.append(layers.Dense(classes, activation=classifier_activation,
                                    name=f"exit{k}_predictions")(x))
    outputs.append(backbone.output)
    return finish_model(backbone.inputs, outputs, backbone.name + "_ee", weights, True)


# ------------------------------------------------------------------------------------------------
# MSDNet (CIFAR)

MSDLayerRow = collections.namedtuple("MSDLayerRow", "layer block in_scales out_scales transition")


def msdnet_block_layers(blocks, step_mode, step, base):
    """Returns the number of MSDNet layers in each block (``base``, then ``step`` each for
    "even" or ``step * i + 1`` for the i-th later block for "lin_grow")."""
    for name, value in (("blocks", blocks), ("step", step), ("base", base)):
        check_positive_int(name, value)
    if step_mode not in STEP_MODES:
        raise ValueError(
            f"`step_mode` must be one of {STEP_MODES}; received step_mode={step_mode!r}")
    if step_mode == "even" and base < step:
        raise ValueError(
            f"`base` (layers before the first exit) must be >= `step` with step_mode='even'; "
            f"received base={base!r}, step={step!r}"
        )
    return (base,) + tuple(step if step_mode == "even" else step * i + 1
                           for i in range(1, blocks))


def msdnet_plan(blocks, step_mode, step, base, scales):
    """Returns one ``MSDLayerRow`` per MSDNet layer: its block and the scales it reads and writes.

    The network keeps every scale for the first third of its layers, drops the finest scale for
    the next third and keeps only the coarsest one at the end ("prune max" of the official code:
    with ``interval = ceil(layers / scales)``, layer n reads ``scales - floor(max(0, n - 2) /
    interval)`` scales and writes ``scales - floor((n - 1) / interval)``). A layer that drops a
    scale is followed by a transition (1x1 conv-BN-ReLU per scale, reduction 0.5).
    """
    check_positive_int("scales", scales)
    per_block = msdnet_block_layers(blocks, step_mode, step, base)
    total = sum(per_block)
    interval = math.ceil(total / scales)
    rows = []
    n = 0
    for block, count in enumerate(per_block, start=1):
        for _ in range(count):
            n += 1
            in_scales = scales - max(0, n - 2) // interval
            out_scales = scales - (n - 1) // interval
            rows.append(MSDLayerRow(n, block, in_scales, out_scales, in_scales > out_scales))
    return tuple(rows)


def _msd_conv(x, filters, strides, bottleneck_factor, prefix):
    """Returns MSDNet's conv unit: [1x1 conv-BN-ReLU to min(C, factor * filters)], then 3x3 conv
    (``strides`` 1 "normal" or 2 "down")-BN-ReLU to ``filters`` maps (post-activation)."""
    inner = min(x.shape[-1], bottleneck_factor * filters)
    x = layers.Conv2D(inner, 1, use_bias=False, name=prefix + "_1x1_conv")(x)
    x = batch_norm(x, prefix + "_1x1_bn", MSD_BN)
    x = activation_layer("relu", prefix + "_1x1_relu")(x)
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                      name=prefix + "_conv")(x)
    x = batch_norm(x, prefix + "_bn", MSD_BN)
    return activation_layer("relu", prefix + "_relu")(x)


def _conv_bn_relu(x, filters, kernel_size, strides, prefix):
    """Returns conv (no bias, 'same')-BN-ReLU named ``{prefix}_conv/_bn/_relu``."""
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                      name=prefix + "_conv")(x)
    x = batch_norm(x, prefix + "_bn", MSD_BN)
    return activation_layer("relu", prefix + "_relu")(x)


def _msd_layer(features, row, scales, growth_rate):
    """Returns the features (one tensor per scale, finest kept first) after MSDNet layer ``row``.

    ``features`` maps each scale index it holds to its tensor. At output scale s the layer adds
    ``growth_rate * growth_factor[s]`` maps: from a 3x3 conv of scale s alone ("normal") at the
    finest scale it writes (unless it drops a scale), else half from a stride-2 conv of scale s-1
    ("down") and half from a normal conv of scale s; the new maps are concatenated to scale s.
    """
    total = len(scales)
    first_out = total - row.out_scales
    out = {}
    for s in range(first_out, total):
        prefix = f"layer{row.layer}_scale{s + 1}"
        x = features[s]
        new = growth_rate * scales[s].growth_factor
        if s == first_out and not row.transition:
            parts = [x, _msd_conv(x, new, 1, scales[s].bottleneck_factor, prefix + "_normal")]
        else:
            parts = [x,
                     _msd_conv(features[s - 1], new // 2, 2, scales[s - 1].bottleneck_factor,
                               prefix + "_down"),
                     _msd_conv(x, new // 2, 1, scales[s].bottleneck_factor, prefix + "_normal")]
        out[s] = layers.Concatenate(axis=-1, name=prefix + "_concat")(parts)
    return out


def MSDNetCifar(blocks=10, step_mode="even", step=2, base=4, growth_rate=MSDNET_CIFAR_GROWTH_RATE,
                stem_channels=MSDNET_CIFAR_STEM_CHANNELS, scales=MSDNET_CIFAR_SCALES,
                reduction=MSDNET_REDUCTION,
                classifier_channels=MSDNET_CIFAR_CLASSIFIER_CHANNELS, weights=None,
                input_tensor=None, input_shape=None, classes=10,
                classifier_activation="softmax", include_preprocessing=False):
    """Returns an MSDNet ``keras.Model`` for CIFAR (Huang et al., 2018): one output per block.

    The first layer makes the scales: a 3x3 conv-BN-ReLU of ``stem_channels * growth_factor``
    maps at full resolution, then a stride-2 one per coarser scale. ``msdnet_plan`` gives the
    layers (each a dense layer across scales, see ``_msd_layer``), their blocks and the
    transitions. After each block a classifier reads the coarsest scale: two 3x3 stride-2
    conv-BN-ReLU of ``classifier_channels`` maps, average pooling, dense. The defaults are the
    paper's anytime-prediction network (``MSDNET_CIFAR["msdnet_cifar"]``: 10 exits, 22 layers).

    Layer names: ``scale{s}_stem_*``, ``layer{n}_scale{s}_{normal,down}_*``,
    ``layer{n}_scale{s}_concat``, ``layer{n}_transition_scale{s}_*``, ``exit{k}_*`` with
    ``exit{k}_predictions`` the k-th output.

    Args:
      blocks: number of blocks, i.e. of exits.
      step_mode, step, base: layers per block (``msdnet_block_layers``).
      growth_rate: maps a layer adds at the finest scale (x growth factor at coarser scales).
      stem_channels: maps of the first layer at the finest scale (x growth factor elsewhere).
      scales: one ``MSDScale(growth_factor, bottleneck_factor)`` row per scale, finest first;
        each scale halves the resolution of the one before.
      reduction: fraction of the maps a transition keeps, in (0, 1].
      classifier_channels: maps of the two convs of each classifier.
      weights: None or the path of an ``.h5`` file of an MSDNet of the same arguments.
      input_tensor, input_shape, classes, classifier_activation: the keras.applications
        convention; the default input is ``(32, 32, 3)``.
      include_preprocessing: normalize [0, 255] inputs with the CIFAR-10 mean and standard
        deviation inside the model; False expects ``kerasnets.data.preprocess(x, "cifar10")``.
    """
    check_common_args(weights, True, None, classes, classifier_activation)
    scales = _check_scales(scales)
    plan = msdnet_plan(blocks, step_mode, step, base, len(scales))
    growth_rate = check_positive_int("growth_rate", growth_rate)
    stem_channels = check_positive_int("stem_channels", stem_channels)
    classifier_channels = check_positive_int("classifier_channels", classifier_channels)
    if (not isinstance(reduction, numbers.Real) or isinstance(reduction, bool)
            or not 0 < reduction <= 1):
        raise ValueError(
            f"`reduction` must be a number in (0, 1]; received reduction={reduction!r}")
    odd = [s.growth_factor for s in scales[1:] if growth_rate * s.growth_factor % 2]
    if odd:
        raise ValueError(
            "`growth_rate` x the growth factor of every scale but the finest must be even (a "
            "layer splits it between its down and normal convs); received "
            f"growth_rate={growth_rate!r} with growth factors {[s.growth_factor for s in scales]}"
        )
    if not isinstance(include_preprocessing, bool):
        raise ValueError("`include_preprocessing` must be True or False; received "
                         f"include_preprocessing={include_preprocessing!r}")
    img_input, inputs = model_input(input_shape, input_tensor, default_size=32,
                                    min_size=2 ** (len(scales) - 1), include_top=True,
                                    static_when_top=False)
    x = img_input
    if include_preprocessing:
        x = layers.Normalization(mean=[255.0 * m for m in CIFAR10_MEAN],
                                 variance=[(255.0 * s) ** 2 for s in CIFAR10_STD],
                                 name="normalization")(x)
    features = {}
    for s, scale in enumerate(scales):
        x = _conv_bn_relu(x, stem_channels * scale.growth_factor, 3, 1 if s == 0 else 2,
                          f"scale{s + 1}_stem")
        features[s] = x
    units = stem_channels  # maps per unit of growth factor, the same at every scale
    outputs = []
    for row in plan:
        features = _msd_layer(features, row, scales, growth_rate)
        units += growth_rate
        if row.transition:
            units = math.floor(reduction * units)
            features = {s: _conv_bn_relu(f, units * scales[s].growth_factor, 1, 1,
                                         f"layer{row.layer}_transition_scale{s + 1}")
                        for s, f in features.items()}
        if row is plan[-1] or plan[row.layer].block != row.block:
            k = row.block
            y = features[len(scales) - 1]
            y = _conv_bn_relu(y, classifier_channels, 3, 2, f"exit{k}_1")
            y = _conv_bn_relu(y, classifier_channels, 3, 2, f"exit{k}_2")
            y = layers.GlobalAveragePooling2D(name=f"exit{k}_pool")(y)
            outputs.append(layers.Dense(classes, activation=classifier_activation,
                                        name=f"exit{k}_predictions")(y))
    return finish_model(inputs, outputs, f"msdnet{len(plan)}_b{blocks}", weights, True)


def _check_scales(scales):
    """Returns ``scales`` as a tuple of ``MSDScale`` after validation."""
    ok = isinstance(scales, (list, tuple)) and len(scales) >= 1
    rows = []
    if ok:
        for row in scales:
            if not (isinstance(row, (list, tuple)) and len(row) == 2 and all(
                    isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0
                    for v in row)):
                ok = False
                break
            rows.append(MSDScale(int(row[0]), int(row[1])))
    if not ok:
        raise ValueError(
            "`scales` must be a non-empty list of (growth_factor, bottleneck_factor) rows of "
            f"positive integers, finest scale first, e.g. {MSDNET_CIFAR_SCALES!r}; received "
            f"scales={scales!r}"
        )
    return tuple(rows)


# ------------------------------------------------------------------------------------------------
# Joint training


def joint_loss_weights(num_exits, kind="uniform"):
    """Returns the per-exit weights of the joint loss, summing to ``num_exits``.

    ``"uniform"``: every exit weighs 1 (MSDNet's default, ``joint_weight uniform``);
    ``"linear"``: exit k weighs proportionally to k, favouring the late, accurate exits.
    """
    check_positive_int("num_exits", num_exits)
    if kind == "uniform":
        return [1.0] * num_exits
    if kind == "linear":
        total = num_exits * (num_exits + 1) / 2
        return [num_exits * k / total for k in range(1, num_exits + 1)]
    raise ValueError(f"`kind` must be one of {JOINT_WEIGHTS}; received kind={kind!r}")


def compile_joint(model, optimizer, loss_weights="uniform", from_logits=False):
    """Returns ``model`` compiled to minimize the weighted sum of its per-exit cross-entropies.

    Args:
      model: a multi-exit model (one output per exit), float or QAT.
      optimizer: a Keras optimizer (or its name).
      loss_weights: ``"uniform"``, ``"linear"`` (``joint_loss_weights``) or one non-negative
        number per exit.
      from_logits: whether the exits output logits (``classifier_activation=None``); False for
        softmax outputs.
    """
    num_exits = len(model.outputs)
    if isinstance(loss_weights, str):
        weights = joint_loss_weights(num_exits, loss_weights)
    else:
        weights = list(loss_weights) if isinstance(loss_weights, (list, tuple)) else None
        if (weights is None or len(weights) != num_exits or any(
                not isinstance(w, numbers.Real) or isinstance(w, bool) or not w >= 0
                for w in weights) or not sum(weights) > 0):
            raise ValueError(
                f"`loss_weights` must be one of {JOINT_WEIGHTS} or {num_exits} non-negative "
                f"numbers (one per exit), not all 0; received loss_weights={loss_weights!r}"
            )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    model.compile(optimizer=optimizer, loss=[loss] * num_exits,
                  loss_weights=[float(w) for w in weights],
                  metrics=[["accuracy"] for _ in range(num_exits)])
    return model


def joint_dataset(images, labels, mode, num_exits, batch_size=64, training=False, seed=None):
    """Returns a batched ``tf.data.Dataset`` of ``(preprocessed images, (labels,) * num_exits)``
    for training or evaluating a multi-exit model (``kerasnets.data.as_dataset`` otherwise)."""
    from kerasnets.data import as_dataset

    check_positive_int("num_exits", num_exits)
    dataset = as_dataset(images, labels, mode, batch_size, training=training, seed=seed)
    return dataset.map(lambda x, y: (x, (y,) * num_exits))


# ------------------------------------------------------------------------------------------------
# The exit policy


def check_thresholds(thresholds, num_exits):
    """Returns the thresholds of the ``num_exits - 1`` early exits as a tuple of floats.

    ``thresholds`` is one number (the same for every early exit) or one number per early exit
    (the last exit always answers), each in [0, 1].
    """
    check_positive_int("num_exits", num_exits)
    if isinstance(thresholds, numbers.Real) and not isinstance(thresholds, bool):
        values = [thresholds] * (num_exits - 1)
    elif isinstance(thresholds, (list, tuple, np.ndarray)):
        values = list(np.asarray(thresholds).ravel()) if isinstance(thresholds, np.ndarray) \
            else list(thresholds)
        if len(values) != num_exits - 1:
            raise ValueError(
                f"`thresholds` must have one value per early exit: {num_exits - 1} for a model "
                f"with {num_exits} exits (the last exit always answers); received "
                f"{len(values)} values: thresholds={list(thresholds)!r}"
            )
    else:
        raise ValueError(
            "`thresholds` must be a number in [0, 1] or a list of them (one per early exit); "
            f"received thresholds={thresholds!r}"
        )
    for value in values:
        if (not isinstance(value, numbers.Real) or isinstance(value, bool)
                or not 0.0 <= float(value) <= 1.0):
            raise ValueError(
                "`thresholds` must lie in [0, 1] (a max-softmax confidence; 1.0 never exits "
                f"early, 0 always does); received thresholds={thresholds!r}"
            )
    return tuple(float(v) for v in values)


def _check_probabilities(probabilities):
    """Returns the per-exit outputs as a float array ``(exits, n, classes)`` after validation."""
    if not isinstance(probabilities, (list, tuple)) or len(probabilities) < 2:
        raise ValueError(
            "`probabilities` must be a list of the softmax outputs of each exit (at least 2 "
            f"exits), arrays (n, classes); received {type(probabilities).__name__}"
        )
    arrays = [np.asarray(p, dtype="float64") for p in probabilities]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 2:
        raise ValueError(
            "`probabilities` must hold one (n, classes) array per exit, all the same shape; "
            f"received shapes {[a.shape for a in arrays]}"
        )
    return np.stack(arrays)


def exit_decisions(probabilities, thresholds):
    """Returns ``(exit_index, prediction, confidence)`` arrays (n,) of the threshold policy.

    Args:
      probabilities: per exit, the softmax outputs ``(n, classes)`` of the n images.
      thresholds: as ``check_thresholds``: an image leaves at the first early exit k whose
        max probability is >= thresholds[k] (a threshold of 1.0 never lets it leave there),
        otherwise at the last exit.
    """
    probs = _check_probabilities(probabilities)
    num_exits, n = probs.shape[:2]
    thresholds = check_thresholds(thresholds, num_exits)
    confidence = probs.max(axis=-1)
    exit_index = np.full(n, num_exits - 1)
    pending = np.ones(n, dtype=bool)
    for k, threshold in enumerate(thresholds):
        if threshold < 1.0:
            leave = pending & (confidence[k] >= threshold)
            exit_index[leave] = k
            pending &= ~leave
    rows = np.arange(n)
    return (exit_index, probs[exit_index, rows].argmax(axis=-1),
            confidence[exit_index, rows])


@dataclasses.dataclass(frozen=True)
class ExitResult:
    """What a threshold policy does on a labelled set: ``accuracy`` (0-1), ``average_cost`` (in
    the unit of the stage costs), ``exit_counts`` (images leaving at each exit)."""

    thresholds: Tuple[float, ...]
    accuracy: float
    average_cost: float
    exit_counts: Tuple[int, ...]


def _check_costs(stage_costs, num_exits):
    """Returns the stage costs as a float array after checking there is one >= 0 per exit."""
    costs = list(stage_costs) if isinstance(stage_costs, (list, tuple, np.ndarray)) else None
    if costs is None or len(costs) != num_exits or any(
            not isinstance(c, numbers.Real) or isinstance(c, bool) or not c >= 0 for c in costs):
        raise ValueError(
            f"`stage_costs` must hold one cost >= 0 per stage ({num_exits}): the MACs or "
            f"seconds of stage k (its layers and its exit); received stage_costs={stage_costs!r}"
        )
    return np.asarray(costs, dtype="float64")


def simulate_exits(probabilities, labels, thresholds, stage_costs):
    """Returns the ``ExitResult`` of ``thresholds`` on images with known per-exit outputs.

    An image leaving at exit k costs stages 1..k (each stage includes its own exit).
    """
    probs = _check_probabilities(probabilities)
    costs = np.cumsum(_check_costs(stage_costs, probs.shape[0]))
    labels = np.asarray(labels).ravel()
    if labels.shape[0] != probs.shape[1]:
        raise ValueError(f"`labels` has {labels.shape[0]} entries for {probs.shape[1]} images")
    exit_index, prediction, _ = exit_decisions(list(probs), thresholds)
    return ExitResult(check_thresholds(thresholds, probs.shape[0]),
                      float(np.mean(prediction == labels)), float(np.mean(costs[exit_index])),
                      tuple(int(c) for c in np.bincount(exit_index, minlength=probs.shape[0])))


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Thresholds chosen by ``calibrate_thresholds`` and what they did on the held-out images."""

    thresholds: Tuple[float, ...]
    budget: float
    method: str
    held_out: ExitResult


def _geometric_thresholds(confidence, q):
    """Returns the thresholds that let a fraction ``z (1 - q)^k q`` of the images leave at exit k
    (the exit distribution of MSDNet's budgeted batch classification), chosen on ``confidence``
    (exits, n)."""
    num_exits, n = confidence.shape
    shares = q * (1 - q) ** np.arange(num_exits)
    shares /= shares.sum()
    pending = np.ones(n, dtype=bool)
    thresholds = []
    for k in range(num_exits - 1):
        count = int(round(shares[k] * n))
        remaining = np.sort(confidence[k][pending])[::-1]
        if count <= 0 or remaining.size == 0:
            thresholds.append(1.0)
            continue
        threshold = min(float(remaining[min(count, remaining.size) - 1]), MAX_EXIT_THRESHOLD)
        thresholds.append(threshold)
        pending &= ~(confidence[k] >= threshold)
    return tuple(thresholds)


def calibrate_thresholds(probabilities, labels, stage_costs, budget, grid=200):
    """Returns the ``Calibration`` of the most accurate thresholds whose average cost on the
    held-out images is at most ``budget``.

    Candidates are two one-parameter families, each swept on ``grid`` points: one threshold
    shared by every early exit (the quantiles of the held-out confidences, plus 1.0), and
    MSDNet's geometric exit shares (``_geometric_thresholds``). Ties in accuracy go to the
    cheaper policy.

    Args:
      probabilities: per exit, the softmax outputs ``(n, classes)`` of held-out images (not the
        images the result will be reported on).
      labels: their integer labels.
      stage_costs: the cost of each stage (MACs, or measured seconds), one per exit.
      budget: the largest acceptable average cost per image, in the unit of ``stage_costs``.

    Raises:
      ValueError: a budget below the cost of the first stage (no policy is that cheap), or
        malformed arguments.
    """
    probs = _check_probabilities(probabilities)
    costs = _check_costs(stage_costs, probs.shape[0])
    if not isinstance(budget, numbers.Real) or isinstance(budget, bool) or not budget >= 0:
        raise ValueError(f"`budget` must be a number >= 0; received budget={budget!r}")
    if budget < costs[0] * (1 - 1e-9):
        raise ValueError(
            f"`budget`={budget!r} is below the cost of the first stage ({costs[0]!r}): even "
            "threshold 0 (every image leaves at the first exit) costs that much"
        )
    check_positive_int("grid", grid)
    confidence = probs.max(axis=-1)
    early = confidence[:-1].ravel()
    early_exits = probs.shape[0] - 1
    candidates = [("shared", (1.0,) * early_exits), ("shared", (0.0,) * early_exits)]
    for t in np.unique(np.quantile(early, np.linspace(0, 1, grid))):
        candidates.append(("shared", (min(float(t), MAX_EXIT_THRESHOLD),) * early_exits))
    for q in np.linspace(0, 1, grid + 2)[1:-1]:
        candidates.append(("geometric", _geometric_thresholds(confidence, q)))
    best = None
    for method, thresholds in candidates:
        result = simulate_exits(list(probs), labels, thresholds, costs)
        if result.average_cost > budget * (1 + 1e-9):
            continue
        key = (result.accuracy, -result.average_cost)
        if best is None or key > best[0]:
            best = (key, method, result)
    _, method, result = best
    return Calibration(result.thresholds, float(budget), method, result)


# ------------------------------------------------------------------------------------------------
# Stages


@dataclasses.dataclass(frozen=True)
class Stage:
    """Stage ``index`` (0-based) of a multi-exit model.

    ``model`` takes the features ``input_names`` (for stage 0, the image) and returns the
    features ``feature_names`` that later stages read, then its exit's output; the last stage
    returns its exit's output only. Names are ``"{producer layer}:{output index}"`` of the
    tensors in the full model. ``layer_names`` are the full model's layers the stage runs;
    the stage models share their layers (and weights) with the full model.
    """

    index: int
    model: keras.Model
    input_names: Tuple[str, ...]
    feature_names: Tuple[str, ...]
    layer_names: Tuple[str, ...]


def _graph(model):
    """Returns ``(layer names in topological order, {layer: [(producer, tensor index, kwargs)]},
    input keys, output keys)`` of a functional model, from its config."""
    if not isinstance(model, keras.Model) or not getattr(model, "_is_graph_network", False):
        raise ValueError(
            "`model` must be a functional keras model (a multi-exit kerasnets builder's); "
            f"received {type(model).__name__}"
        )
    config = model.get_config()
    names, inbound = [], {}
    for layer in config["layers"]:
        name = layer["config"]["name"]
        nodes = layer["inbound_nodes"]
        if len(nodes) > 1:
            raise ValueError(
                f"layer {name!r} of {model.name!r} is called {len(nodes)} times; split_stages "
                "needs every layer called once"
            )
        names.append(name)
        inbound[name] = [(entry[0], entry[2], entry[3] if len(entry) > 3 else {})
                         for entry in (nodes[0] if nodes else [])]
    inputs = [(entry[0], entry[2]) for entry in config["input_layers"]]
    outputs = [(entry[0], entry[2]) for entry in config["output_layers"]]
    return names, inbound, inputs, outputs


def _stage_of_layers(names, inbound, outputs):
    """Returns ``{layer name: stage}``: the first exit whose output depends on the layer, moved
    earlier where needed so that no stage passes on a tensor it neither computes nor uses.

    Assigning each layer to the first exit that needs it computes as little as possible before
    each exit (MSDNet's exit k only needs the coarsest scale). But then a tensor made in stage i
    may be read first in stage j > i + 1 (MSDNet: a fine-scale map that only a later layer reads),
    and stages i + 1 .. j - 1 would have to carry it. Its readers (with their own inputs) move to
    stage i + 1 instead, until no such tensor is left.
    """
    stage_of = {}
    for k, (out_name, _) in enumerate(outputs):
        if out_name in stage_of:
            raise ValueError(
                f"exit {k + 1} ({out_name!r}) is computed on the way to exit "
                f"{stage_of[out_name] + 1}: the model's outputs must be its exits in order"
            )
        stack = [out_name]
        while stack:
            name = stack.pop()
            if name in stage_of:
                continue
            stage_of[name] = k
            stack.extend(p for p, _, _ in inbound[name])
    exit_layers = {name: k for k, (name, _) in enumerate(outputs)}

    def move(name, stage):
        stack = [name]
        while stack:
            layer = stack.pop()
            if stage_of[layer] <= stage:
                continue
            if layer in exit_layers:
                raise ValueError(
                    f"exit {exit_layers[layer] + 1} ({layer!r}) reads a tensor of stage "
                    f"{stage}: the model cannot be split into one stage per exit"
                )
            stage_of[layer] = stage
            stack.extend(p for p, _, _ in inbound[layer])

    moved = True
    while moved:
        moved = False
        for name in names:
            if name not in stage_of:
                continue
            late = [p for p, _, _ in inbound[name] if stage_of[name] > stage_of[p] + 1]
            if late:
                move(name, min(stage_of[p] for p in late) + 1)
                moved = True
    return stage_of


def _key_name(key):
    return f"{key[0]}:{key[1]}"


def split_stages(model):
    """Returns the ``Stage`` list of a multi-exit functional model (one stage per exit).

    A layer belongs to the stage of the first exit that needs it; a stage passes on the tensors
    that later stages read (for MSDNet, the maps of every scale still in use). Stage models are
    new functional models calling the full model's own layers, so they always hold its current
    weights; they work the same on a QAT model from ``kerasnets.quantization.qat.quantize_model``.

    Raises:
      ValueError: a model with fewer than two outputs, outputs not in exit order, or an exit
        that reads a tensor of an earlier stage than its own stage's inputs.
    """
    names, inbound, input_keys, output_keys = _graph(model)
    if len(output_keys) < 2:
        raise ValueError(
            f"`model` must have one output per exit (at least 2); {model.name!r} has "
            f"{len(output_keys)}"
        )
    stage_of = _stage_of_layers(names, inbound, output_keys)
    order = {name: i for i, name in enumerate(names)}
    num_stages = len(output_keys)
    consumers = collections.defaultdict(set)  # tensor key -> stages reading it
    for name, entries in inbound.items():
        if name in stage_of:
            for producer, index, _ in entries:
                consumers[(producer, index)].add(stage_of[name])

    def carried(k):
        """Tensor keys computed in stages <= k and read by stages > k, in layer order."""
        keys = [key for key, stages in consumers.items()
                if stage_of[key[0]] <= k and max(stages) > k]
        return sorted(keys, key=lambda key: (order[key[0]], key[1]))

    stages = []
    for k in range(num_stages):
        in_keys = input_keys if k == 0 else carried(k - 1)
        features = carried(k) if k < num_stages - 1 else []
        tensors = {}
        stage_inputs = []
        for i, key in enumerate(in_keys):
            producer = model.get_layer(key[0])
            shape = keras.backend.int_shape(_flat_outputs(producer)[key[1]])
            tensor = keras.Input(shape=shape[1:], name=f"stage{k + 1}_input{i + 1}")
            tensors[key] = tensor
            stage_inputs.append(tensor)
        stage_layers = [name for name in names if stage_of.get(name) == k
                        and not isinstance(model.get_layer(name), keras.layers.InputLayer)]
        for name in stage_layers:
            entries = inbound[name]
            args = [tensors[(producer, index)] for producer, index, _ in entries]
            kwargs = entries[-1][2] if entries else {}
            result = model.get_layer(name)(args[0] if len(args) == 1 else args, **kwargs)
            for index, tensor in enumerate(tf.nest.flatten(result)):
                tensors[(name, index)] = tensor
        stage_outputs = [tensors[key] for key in features] + [tensors[output_keys[k]]]
        stage_model = keras.Model(stage_inputs, stage_outputs, name=f"{model.name}_stage{k + 1}")
        stages.append(Stage(k, stage_model, tuple(map(_key_name, in_keys)),
                            tuple(map(_key_name, features)), tuple(stage_layers)))
    return stages


def _flat_outputs(layer):
    """Returns the output tensors of ``layer``'s first call (in its model) as a flat list."""
    return tf.nest.flatten(layer.get_output_at(0))


def stage_macs(model):
    """Returns the conv/dense MACs of each stage of a float multi-exit model (its layers and its
    exit; ``kerasnets.models.profiler`` counting), one int per exit."""
    names, inbound, _, output_keys = _graph(model)
    stage_of = _stage_of_layers(names, inbound, output_keys)
    macs = [0] * len(output_keys)
    for name, k in stage_of.items():
        macs[k] += int(layer_macs(model.get_layer(name)))
    return macs


def exit_outputs_are_probabilities(model):
    """Returns True if every exit of a float multi-exit model ends in softmax, False if every
    exit outputs logits (``classifier_activation=None``); raises ValueError otherwise."""
    kinds = set()
    for name in model.output_names:
        activation = getattr(model.get_layer(name), "activation", None)
        kinds.add(getattr(activation, "__name__", None))
    if kinds == {"softmax"}:
        return True
    if kinds == {"linear"}:
        return False
    raise ValueError(
        f"the exits of {model.name!r} must all output softmax probabilities or all logits; "
        f"their activations are {sorted(map(str, kinds))}"
    )


def softmax(logits):
    """Returns the softmax of ``logits`` along the last axis (NumPy, numerically stable)."""
    z = np.asarray(logits, dtype="float64")
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


register_model("densenet_ee_cifar", MultiExitDenseNetCifar, family="early_exit", default_size=32,
               min_size=2 ** (CIFAR_NUM_BLOCKS - 1))
for _name, _config in MSDNET_CIFAR.items():
    register_model(_name, MSDNetCifar, family="early_exit", default_size=32,
                   min_size=2 ** (len(MSDNET_CIFAR_SCALES) - 1), **_config._asdict())
