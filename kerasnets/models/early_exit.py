"""Early-exit (anytime) networks: the multi-exit DenseNet and MSDNet builders.

A multi-exit model has one classifier ("exit") after each of several stages and returns one output
per exit, in order. At inference an image stops at the first exit whose confidence (its largest
softmax probability) reaches that exit's threshold; a hard image runs on to the next stage. That
is the "budgeted batch classification" of MSDNet (Huang et al., 2018, "Multi-Scale Dense Networks
for Resource Efficient Image Classification", ICLR, arXiv:1703.09844); running every stage and
reading every exit is its "anytime prediction".

- ``MultiExitDenseNetCifar``: the CIFAR DenseNet / DenseNet-BC of ``kerasnets.models.densenet``
  with a classifier (BN-ReLU-global average pool-dense, the DenseNet head) after each dense block
  or at any dense layer (``exits``). The paper's baseline "DenseNet with intermediate
  classifiers".
- ``MSDNetCifar``: MSDNet's CIFAR network: three scales of dense features, a classifier on the
  coarsest scale after every block (``MSDNET_CIFAR`` gives the paper's two settings).

The rest of the pipeline, one module per concern: joint training in
``kerasnets.training.early_exit``, the split into stages in ``kerasnets.export.stage_split``, the
exit policy and its calibration in ``kerasnets.export.exit_policy``, and the TFLite stages with
their runtime in ``kerasnets.export.stages``.
"""

import collections
import math
import numbers
from typing import Optional, Sequence, Tuple, Union

from kerasnets._keras import keras, layers
from kerasnets.layers.blocks import BNConfig, activation_layer, batch_norm, mean_std_normalization
from kerasnets.models.convention import check_common_args, check_positive_int, model_input
from kerasnets.models.densenet import BN as DENSENET_BN
from kerasnets.models.densenet import (
    CIFAR10_MEAN, CIFAR10_STD, CIFAR_NUM_BLOCKS, DenseNetCifar, _check_cifar_depth,
)
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


ExitPoint = Union[int, Tuple[int, int]]


def MultiExitDenseNetCifar(depth: int = 100, growth_rate: int = 12, bottleneck: bool = True,
                           compression: float = 0.5, exits: Sequence[ExitPoint] = (1, 2),
                           weights: Optional[str] = None, input_tensor=None,
                           input_shape: Optional[Tuple[int, int, int]] = None, classes: int = 10,
                           classifier_activation: Optional[str] = "softmax",
                           dropout_rate: float = 0.0,
                           include_preprocessing: bool = False) -> keras.Model:
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

    Raises:
      ValueError: exit points outside the network, the end of the last block listed as an
        early exit, or a ``DenseNetCifar`` argument it rejects.
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


def msdnet_block_layers(blocks: int, step_mode: str, step: int, base: int) -> Tuple[int, ...]:
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


def msdnet_plan(blocks: int, step_mode: str, step: int, base: int,
                scales: int) -> Tuple[MSDLayerRow, ...]:
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


def _msd_stem(x, scales, stem_channels):
    """Returns MSDNet's first layer, ``{scale index: tensor}``: a 3x3 conv-BN-ReLU of
    ``stem_channels * growth_factor`` maps at full resolution, then a stride-2 one per coarser
    scale, each reading the scale before it."""
    features = {}
    for s, scale in enumerate(scales):
        x = _conv_bn_relu(x, stem_channels * scale.growth_factor, 3, 1 if s == 0 else 2,
                          f"scale{s + 1}_stem")
        features[s] = x
    return features


def _msd_classifier(x, k, channels, classes, classifier_activation):
    """Returns exit ``k`` of MSDNet's CIFAR network on the coarsest scale ``x``: two 3x3 stride-2
    conv-BN-ReLU of ``channels`` maps, global average pooling, dense."""
    x = _conv_bn_relu(x, channels, 3, 2, f"exit{k}_1")
    x = _conv_bn_relu(x, channels, 3, 2, f"exit{k}_2")
    x = layers.GlobalAveragePooling2D(name=f"exit{k}_pool")(x)
    return layers.Dense(classes, activation=classifier_activation,
                        name=f"exit{k}_predictions")(x)


def _check_msdnet_numbers(growth_rate, scales, reduction, include_preprocessing):
    """Raises ``ValueError`` on a ``reduction`` outside (0, 1], a growth rate that a coarse scale
    cannot split evenly between its down and normal convs, or a non-bool
    ``include_preprocessing``."""
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


def MSDNetCifar(blocks: int = 10, step_mode: str = "even", step: int = 2, base: int = 4,
                growth_rate: int = MSDNET_CIFAR_GROWTH_RATE,
                stem_channels: int = MSDNET_CIFAR_STEM_CHANNELS,
                scales: Sequence[Tuple[int, int]] = MSDNET_CIFAR_SCALES,
                reduction: float = MSDNET_REDUCTION,
                classifier_channels: int = MSDNET_CIFAR_CLASSIFIER_CHANNELS,
                weights: Optional[str] = None, input_tensor=None,
                input_shape: Optional[Tuple[int, int, int]] = None, classes: int = 10,
                classifier_activation: Optional[str] = "softmax",
                include_preprocessing: bool = False) -> keras.Model:
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

    Raises:
      ValueError: an argument outside what the docstring allows (the message names it).
    """
    check_common_args(weights, True, None, classes, classifier_activation)
    scales = _check_scales(scales)
    plan = msdnet_plan(blocks, step_mode, step, base, len(scales))
    growth_rate = check_positive_int("growth_rate", growth_rate)
    stem_channels = check_positive_int("stem_channels", stem_channels)
    classifier_channels = check_positive_int("classifier_channels", classifier_channels)
    _check_msdnet_numbers(growth_rate, scales, reduction, include_preprocessing)
    img_input, inputs = model_input(input_shape, input_tensor, default_size=32,
                                    min_size=2 ** (len(scales) - 1), include_top=True,
                                    static_when_top=False)
    x = img_input
    if include_preprocessing:
        x = mean_std_normalization(x, CIFAR10_MEAN, CIFAR10_STD)
    features = _msd_stem(x, scales, stem_channels)
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
            outputs.append(_msd_classifier(features[len(scales) - 1], row.block,
                                           classifier_channels, classes, classifier_activation))
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


register_model("densenet_ee_cifar", MultiExitDenseNetCifar, family="early_exit", default_size=32,
               min_size=2 ** (CIFAR_NUM_BLOCKS - 1))
for _name, _config in MSDNET_CIFAR.items():
    register_model(_name, MSDNetCifar, family="early_exit", default_size=32,
                   min_size=2 ** (len(MSDNET_CIFAR_SCALES) - 1), **_config._asdict())
