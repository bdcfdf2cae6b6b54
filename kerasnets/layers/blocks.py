"""Shared building blocks: conv-BN-activation, depthwise separable, inverted residual with linear
bottleneck, squeeze-and-excite, the residual addition with stochastic depth, dense layer and
transition.

Every op is a Keras layer with a deterministic name. Names follow the keras.applications twin of
each family (a ``BlockNames`` scheme per family), because names are the contract for weight
import and per-layer profiles.
"""

import dataclasses

from kerasnets._keras import backend, layers
from kerasnets.layers.custom import HardSigmoid, HardSwish, StochasticDepth

ACTIVATIONS = ("relu", "relu6", "hard_swish", "hard_sigmoid")


def correct_pad(x, kernel_size):
    """Returns the ``((top, bottom), (left, right))`` zero padding for a stride-2 'valid' conv.

    Pads like TensorFlow's 'same' for even input sizes (one more pixel at the end) and keeps that
    asymmetry when the size is unknown, as keras.applications does.
    """
    size = backend.int_shape(x)[1:3]
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size, kernel_size)
    adjust = (1, 1) if size[0] is None else (1 - size[0] % 2, 1 - size[1] % 2)
    half = (kernel_size[0] // 2, kernel_size[1] // 2)
    return ((half[0] - adjust[0], half[0]), (half[1] - adjust[1], half[1]))



def make_divisible(value, divisor=8, min_value=None):
    """Returns ``value`` rounded to a multiple of ``divisor``, never more than 10% below it.

    The channel rounding of the MobileNetV2/V3 reference code (``_make_divisible``/``_depth``).
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def activation_layer(kind, name):
    """Returns a new Keras layer applying activation ``kind`` (one of ``ACTIVATIONS``)."""
    if kind == "relu":
        return layers.ReLU(name=name)
    if kind == "relu6":
        return layers.ReLU(6.0, name=name)
    if kind == "hard_swish":
        return HardSwish(name=name)
    if kind == "hard_sigmoid":
        return HardSigmoid(name=name)
    raise ValueError(f"activation must be one of {ACTIVATIONS}; received {kind!r}")


@dataclasses.dataclass(frozen=True)
class BNConfig:
    """BatchNormalization settings of a family (keras.applications' choices)."""

    epsilon: float = 1e-3
    momentum: float = 0.99


def mean_std_normalization(x, mean, std, name="normalization"):
    """Returns ``(x - 255 mean) / (255 std)`` per channel: [0, 255] pixels normalized with a
    dataset's ``mean`` and ``std`` given in [0, 1] units (a Keras ``Normalization`` layer)."""
    return layers.Normalization(mean=[255.0 * m for m in mean],
                                variance=[(255.0 * s) ** 2 for s in std], name=name)(x)


def batch_norm(x, name, bn):
    """Returns ``x`` after a channels-last BatchNormalization named ``name``."""
    return layers.BatchNormalization(
        axis=-1, epsilon=bn.epsilon, momentum=bn.momentum, name=name
    )(x)


def conv_bn_act(x, filters, kernel_size, strides, activation, names, bn, use_bias=False):
    """Returns ``activation(BN(conv(x)))`` with 'same' padding.

    Args:
      names: ``(conv_name, bn_name, act_name)``.
      activation: one of ``ACTIVATIONS`` or None (linear).
    """
    conv_name, bn_name, act_name = names
    x = layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=use_bias,
        name=conv_name,
    )(x)
    x = batch_norm(x, bn_name, bn)
    if activation is not None:
        x = activation_layer(activation, act_name)(x)
    return x


def depthwise_separable(x, pointwise_filters, strides, depth_multiplier, block_id, bn):
    """Returns the MobileNetV1 block: 3x3 depthwise-BN-ReLU6, then 1x1 pointwise-BN-ReLU6.

    Layer names are keras.applications.MobileNet's (``conv_dw_{id}``, ``conv_pw_{id}``, ...).
    """
    if strides == 1:
        padding = "same"
    else:
        x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"conv_pad_{block_id}")(x)
        padding = "valid"
    x = layers.DepthwiseConv2D(
        3, strides=strides, padding=padding, depth_multiplier=depth_multiplier,
        use_bias=False, name=f"conv_dw_{block_id}",
    )(x)
    x = batch_norm(x, f"conv_dw_{block_id}_bn", bn)
    x = activation_layer("relu6", f"conv_dw_{block_id}_relu")(x)
    return conv_bn_act(
        x, pointwise_filters, 1, 1, "relu6",
        (f"conv_pw_{block_id}", f"conv_pw_{block_id}_bn", f"conv_pw_{block_id}_relu"), bn,
    )


@dataclasses.dataclass(frozen=True)
class BlockNames:
    """Suffixes of an inverted-residual block's layers, after the block prefix."""

    expand: str
    expand_bn: str
    expand_act: str
    pad: str
    depthwise: str
    depthwise_bn: str
    depthwise_act: str
    squeeze_excite: str
    project: str
    project_bn: str
    drop_path: str
    add: str
    # Only built by the non-linear bottleneck ablation (MobileNetV2 paper Fig. 6a).
    project_act: str


# keras.applications.MobileNetV2 names: block_3_expand, block_3_expand_BN, ...
V2_NAMES = BlockNames(
    "expand", "expand_BN", "expand_relu", "pad", "depthwise", "depthwise_BN", "depthwise_relu",
    "squeeze_excite/", "project", "project_BN", "drop_path", "add", "project_relu",
)
# keras.applications.MobileNetV3 names: expanded_conv_3/expand, expanded_conv_3/expand/BatchNorm...
V3_NAMES = BlockNames(
    "expand", "expand/BatchNorm", "expand/activation", "depthwise/pad", "depthwise",
    "depthwise/BatchNorm", "depthwise/activation", "squeeze_excite/", "project",
    "project/BatchNorm", "drop_path", "Add", "project/activation",
)


def squeeze_excite(x, filters, squeeze_filters, prefix):
    """Returns ``x * hard_sigmoid(conv(relu(conv(avgpool(x)))))``, MobileNetV3's SE module.

    Squeeze-and-excite (Hu et al., 2018) with MobileNetV3's hard-sigmoid gate; layer names are
    keras.applications.MobileNetV3's.
    """
    s = layers.GlobalAveragePooling2D(keepdims=True, name=prefix + "AvgPool")(x)
    s = layers.Conv2D(squeeze_filters, 1, padding="same", name=prefix + "Conv")(s)
    s = layers.ReLU(name=prefix + "Relu")(s)
    s = layers.Conv2D(filters, 1, padding="same", name=prefix + "Conv_1")(s)
    s = HardSigmoid(name=prefix + "hard_sigmoid")(s)
    return layers.Multiply(name=prefix + "Mul")([x, s])


def inverted_residual(x, *, expanded, filters, kernel_size, strides, activation,
                      squeeze_filters, prefix, names, bn, drop_path_rate=0.0,
                      project_activation=None):
    """Returns the inverted residual block with linear bottleneck (MobileNetV2, Sandler et al.
    2018, Table 1), optionally with squeeze-and-excite (MobileNetV3).

    1x1 expansion conv-BN-act (skipped when ``expanded`` equals the input channels of the first
    block, as in the papers' first bottleneck), depthwise conv-BN-act, optional SE, 1x1 linear
    projection conv-BN (no activation: the linear bottleneck), and an identity shortcut when
    stride is 1 and the channels match, with optional stochastic depth on the residual branch.

    Args:
      expanded: expansion channels, or None for a block without expansion conv.
      squeeze_filters: SE bottleneck channels, or None for no SE.
      prefix: the block's layer-name prefix; ``names`` gives the suffixes.
      project_activation: None (the linear bottleneck) or an activation after the projection's
        BN, before the shortcut: the non-linear bottleneck of the MobileNetV2 paper's ablation
        (Fig. 6a).
    """
    shortcut = x
    in_channels = x.shape[-1]
    if expanded is not None:
        x = conv_bn_act(
            x, expanded, 1, 1, activation,
            (prefix + names.expand, prefix + names.expand_bn, prefix + names.expand_act), bn,
        )
    channels = x.shape[-1]
    if strides == 2:
        x = layers.ZeroPadding2D(correct_pad(x, kernel_size), name=prefix + names.pad)(x)
    x = layers.DepthwiseConv2D(
        kernel_size, strides=strides, padding="same" if strides == 1 else "valid",
        use_bias=False, name=prefix + names.depthwise,
    )(x)
    x = batch_norm(x, prefix + names.depthwise_bn, bn)
    x = activation_layer(activation, prefix + names.depthwise_act)(x)
    if squeeze_filters is not None:
        x = squeeze_excite(x, channels, squeeze_filters, prefix + names.squeeze_excite)
    x = layers.Conv2D(filters, 1, padding="same", use_bias=False, name=prefix + names.project)(x)
    x = batch_norm(x, prefix + names.project_bn, bn)
    if project_activation is not None:
        x = activation_layer(project_activation, prefix + names.project_act)(x)
    if strides == 1 and in_channels == filters:
        x = residual_add(shortcut, x, drop_path_rate, prefix + names.drop_path,
                         prefix + names.add)
    return x


def residual_add(shortcut, branch, drop_path_rate, drop_path_name, add_name):
    """Returns ``Add([shortcut, branch])``, the residual ``branch`` first wrapped in a
    ``StochasticDepth`` layer (Huang et al. 2016: the branch of a sample dropped with probability
    ``drop_path_rate`` while training, identity at inference) when the rate is above 0."""
    if drop_path_rate > 0:
        branch = StochasticDepth(drop_path_rate, name=drop_path_name)(branch)
    return layers.Add(name=add_name)([shortcut, branch])


def drop_path_rates(drop_path_rate, num_blocks):
    """Returns the stochastic depth rate of each of ``num_blocks`` blocks: rising linearly from 0
    at the first block to ``drop_path_rate`` at the last (timm's rule; Huang et al. 2016's
    "linear decay" of the survival probability)."""
    return [drop_path_rate * i / max(num_blocks - 1, 1) for i in range(num_blocks)]


# DenseNet (Huang et al., 2017, "Densely Connected Convolutional Networks", arXiv:1608.06993).
# Section 3, "Bottleneck layers": each 1x1 conv of a DenseNet-B layer produces 4k feature maps.
DENSE_BOTTLENECK_WIDTH = 4


def _dropout(x, rate, name):
    """Returns ``x`` after a Dropout layer named ``name``, or ``x`` itself when ``rate`` is 0."""
    return layers.Dropout(rate, name=name)(x) if rate > 0 else x


def dense_layer(x, growth_rate, bottleneck, name, bn, dropout_rate=0.0):
    """Returns ``concat([x, H(x)])``, one layer of a DenseNet dense block (paper section 3).

    ``H`` is the composite function BN-ReLU-3x3 conv with ``growth_rate`` (k) filters; with
    ``bottleneck`` (DenseNet-B) it is BN-ReLU-1x1 conv (4k filters) followed by BN-ReLU-3x3 conv
    (k filters). With ``dropout_rate`` > 0 a dropout layer follows each conv, the paper's setting
    for data sets without augmentation. Layer names are keras.applications.DenseNet's:
    ``{name}_0_bn``, ``{name}_0_relu``, ``{name}_1_conv`` (the 1x1 conv, or the only conv of a
    plain layer), ``{name}_1_bn``, ``{name}_1_relu``, ``{name}_2_conv``, ``{name}_concat``.
    """
    y = batch_norm(x, name + "_0_bn", bn)
    y = activation_layer("relu", name + "_0_relu")(y)
    if bottleneck:
        y = layers.Conv2D(DENSE_BOTTLENECK_WIDTH * growth_rate, 1, use_bias=False,
                          name=name + "_1_conv")(y)
        y = _dropout(y, dropout_rate, name + "_1_drop")
        y = batch_norm(y, name + "_1_bn", bn)
        y = activation_layer("relu", name + "_1_relu")(y)
        y = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False,
                          name=name + "_2_conv")(y)
        y = _dropout(y, dropout_rate, name + "_2_drop")
    else:
        y = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False,
                          name=name + "_1_conv")(y)
        y = _dropout(y, dropout_rate, name + "_1_drop")
    return layers.Concatenate(axis=-1, name=name + "_concat")([x, y])


def dense_block(x, num_layers, growth_rate, bottleneck, name, bn, dropout_rate=0.0):
    """Returns the output of a dense block: ``num_layers`` dense layers, each receiving the
    concatenation of the block input and of every earlier layer's ``growth_rate`` feature maps.

    Layers are named ``{name}_block1`` ... ``{name}_block{num_layers}`` (see ``dense_layer``).
    """
    for i in range(num_layers):
        x = dense_layer(x, growth_rate, bottleneck, f"{name}_block{i + 1}", bn, dropout_rate)
    return x


def transition(x, compression, name, bn, dropout_rate=0.0):
    """Returns the DenseNet transition layer: BN-ReLU-1x1 conv-2x2 average pool, stride 2.

    The conv keeps ``floor(compression * m)`` of the ``m`` input feature maps (paper section 3,
    "Compression", theta; 1 keeps them all). Layer names are keras.applications.DenseNet's:
    ``{name}_bn``, ``{name}_relu``, ``{name}_conv``, ``{name}_pool``.
    """
    channels = x.shape[-1]
    filters = int(channels * compression)
    if filters < 1:
        raise ValueError(
            f"`compression`={compression!r} leaves no feature map of the {channels} entering "
            f"transition {name!r}; it must be large enough that compression * {channels} >= 1"
        )
    x = batch_norm(x, name + "_bn", bn)
    x = activation_layer("relu", name + "_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=name + "_conv")(x)
    x = _dropout(x, dropout_rate, name + "_drop")
    return layers.AveragePooling2D(2, strides=2, name=name + "_pool")(x)
