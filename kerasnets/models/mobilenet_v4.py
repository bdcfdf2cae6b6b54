"""MobileNetV4-Conv-S and -Conv-M (Qin et al., 2024, "MobileNetV4 - Universal Models for the
Mobile Ecosystem", arXiv:2404.10518).

Built from the Universal Inverted Bottleneck (UIB, paper section 3.2): an inverted bottleneck
with an optional depthwise conv before the expansion ("start") and one between expansion and
projection ("middle"). Its four instances are ExtraDW (both), IB (middle only: MobileNetV2's
block), ConvNext-like (start only) and FFN (neither). Fused IB blocks (a full kxk conv doing the
expansion) open the network. Every conv is followed by BatchNorm; activations are ReLU; a
stride-2 UIB downsamples in its middle depthwise conv (TF Model Garden's
``middle_dw_downsample``). The start depthwise conv has no activation, the projection is linear,
and a block whose stride is 1 and whose channels do not change has an identity shortcut.

The head is the paper's: 1x1 conv to 960, global average pool, 1x1 conv to 1280 (with BatchNorm
and ReLU), dropout and the fully connected classifier.
"""

import collections

from kerasnets._keras import layers
from kerasnets.layers.blocks import (
    BNConfig, activation_layer, batch_norm, conv_bn_act, drop_path_rates, residual_add,
)
from kerasnets.models.convention import (
    check_common_args, check_rate, dense_classifier, model_input, pool_features,
)
from kerasnets.models.registry import register_model
from kerasnets.models.weights import finish_model

# One row per layer of the paper's architecture tables, in the paper's column order: block,
# DW K1, DW K2, expanded dim, output dim, stride. K1/K2 are the kernel sizes of a UIB's start
# and middle depthwise convs (None: absent); for a "conv" row (conv-BN-ReLU) K1 is the conv's
# kernel, for a "fused_ib" row the kernel of its fused expansion conv.
Row = collections.namedtuple("Row", "block k1 k2 expanded out stride")
CONV, FUSED_IB, EXTRA_DW, IB, CONVNEXT, FFN = (
    "conv", "fused_ib", "extra_dw", "ib", "convnext", "ffn")

# MobileNetV4-Conv-S (paper Table 10; TF Model Garden MNV4ConvSmall_BLOCK_SPECS). Table 10
# prints the two blocks after the stem as FusedIB rows (expanded 32 and 96); the reference code
# (TF Model Garden's MNV4ConvSmall_BLOCK_SPECS, timm's mobilenetv4_conv_small) builds each as
# two `convbn` layers, a 3x3 stride-2 conv to the expanded width and a 1x1 conv to the output,
# BOTH followed by ReLU: the same parameters as a fused IB, but no linear projection. We follow
# the reference code, whose trained weights exist.
CONV_SMALL = (
    Row(CONV, 3, None, None, 32, 2),
    Row(CONV, 3, None, None, 32, 2),
    Row(CONV, 1, None, None, 32, 1),       # C2: stride 4
    Row(CONV, 3, None, None, 96, 2),
    Row(CONV, 1, None, None, 64, 1),       # C3: stride 8
    Row(EXTRA_DW, 5, 5, 192, 96, 2),
    Row(IB, None, 3, 192, 96, 1),
    Row(IB, None, 3, 192, 96, 1),
    Row(IB, None, 3, 192, 96, 1),
    Row(IB, None, 3, 192, 96, 1),
    Row(CONVNEXT, 3, None, 384, 96, 1),    # C4: stride 16
    Row(EXTRA_DW, 3, 3, 576, 128, 2),
    Row(EXTRA_DW, 5, 5, 512, 128, 1),
    Row(IB, None, 5, 512, 128, 1),
    Row(IB, None, 5, 384, 128, 1),
    Row(IB, None, 3, 512, 128, 1),
    Row(IB, None, 3, 512, 128, 1),
    Row(CONV, 1, None, None, 960, 1),      # C5: stride 32
)

# MobileNetV4-Conv-M (paper Table 11; TF Model Garden _mnv4_conv_medium_block_specs).
CONV_MEDIUM = (
    Row(CONV, 3, None, None, 32, 2),
    Row(FUSED_IB, 3, None, 128, 48, 2),    # C2: stride 4
    Row(EXTRA_DW, 3, 5, 192, 80, 2),
    Row(EXTRA_DW, 3, 3, 160, 80, 1),       # C3: stride 8
    Row(EXTRA_DW, 3, 5, 480, 160, 2),
    Row(EXTRA_DW, 3, 3, 640, 160, 1),
    Row(EXTRA_DW, 3, 3, 640, 160, 1),
    Row(EXTRA_DW, 3, 5, 640, 160, 1),
    Row(EXTRA_DW, 3, 3, 640, 160, 1),
    Row(CONVNEXT, 3, None, 640, 160, 1),
    Row(FFN, None, None, 320, 160, 1),
    Row(CONVNEXT, 3, None, 640, 160, 1),   # C4: stride 16
    Row(EXTRA_DW, 5, 5, 960, 256, 2),
    Row(EXTRA_DW, 5, 5, 1024, 256, 1),
    Row(EXTRA_DW, 3, 5, 1024, 256, 1),
    Row(EXTRA_DW, 3, 5, 1024, 256, 1),
    Row(FFN, None, None, 1024, 256, 1),
    Row(CONVNEXT, 3, None, 1024, 256, 1),
    Row(EXTRA_DW, 3, 5, 512, 256, 1),
    Row(EXTRA_DW, 5, 5, 1024, 256, 1),
    Row(FFN, None, None, 1024, 256, 1),
    Row(FFN, None, None, 1024, 256, 1),
    Row(CONVNEXT, 5, None, 512, 256, 1),
    Row(CONV, 1, None, None, 960, 1),      # C5: stride 32
)
HEAD_FILTERS = 1280

BN = BNConfig(epsilon=1e-3, momentum=0.99)


def _depthwise_bn(x, kernel, stride, name, activation):
    """Returns ``activation(BN(depthwise kxk conv(x)))`` ('same' padding), or without
    activation when ``activation`` is None."""
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                               name=name)(x)
    x = batch_norm(x, name + "_bn", BN)
    if activation is not None:
        x = activation_layer(activation, name + "_relu")(x)
    return x


def mnv4_block(x, row, prefix, drop_path_rate):
    """Returns the output of a fused IB or UIB block (``row``), its layers named ``prefix_*``.

    UIB: [start dw-BN] -> 1x1 expand-BN-ReLU -> [middle dw-BN-ReLU] -> 1x1 project-BN, the
    stride taken by the middle dw when there is one (by the start dw otherwise). Fused IB:
    kxk conv-BN-ReLU to the expanded width (with the stride) -> 1x1 project-BN.
    """
    shortcut = x
    in_channels = x.shape[-1]
    if row.block == FUSED_IB:
        x = conv_bn_act(x, row.expanded, row.k1, row.stride, "relu",
                        (prefix + "_fused", prefix + "_fused_bn", prefix + "_fused_relu"), BN)
    else:
        if row.k1 is not None:
            x = _depthwise_bn(x, row.k1, 1 if row.k2 is not None else row.stride,
                              prefix + "_start_dw", None)
        x = conv_bn_act(x, row.expanded, 1, 1, "relu",
                        (prefix + "_expand", prefix + "_expand_bn", prefix + "_expand_relu"), BN)
        if row.k2 is not None:
            x = _depthwise_bn(x, row.k2, row.stride, prefix + "_middle_dw", "relu")
    x = conv_bn_act(x, row.out, 1, 1, None, (prefix + "_project", prefix + "_project_bn", None),
                    BN)
    if row.stride == 1 and in_channels == row.out:
        x = residual_add(shortcut, x, drop_path_rate, prefix + "_drop_path", prefix + "_add")
    return x


def _mobilenet_v4(table, model_name, input_shape, include_top, weights, input_tensor, pooling,
                  classes, classifier_activation, dropout_rate, drop_path_rate):
    """Returns a MobileNetV4 model decoded from ``table`` (rows in the paper's order)."""
    check_common_args(weights, include_top, pooling, classes, classifier_activation, dropout_rate)
    drop_path_rate = check_rate("drop_path_rate", drop_path_rate)
    img_input, inputs = model_input(input_shape, input_tensor, default_size=224, min_size=32,
                                    include_top=include_top, static_when_top=False)

    x = img_input
    # Stochastic depth's linear rule runs over the fused IB and UIB blocks, not the plain convs.
    rates = iter(drop_path_rates(drop_path_rate, sum(row.block != CONV for row in table)))
    for i, row in enumerate(table):
        prefix = f"block{i}"
        if row.block == CONV:
            x = conv_bn_act(x, row.out, row.k1, row.stride, "relu",
                            (prefix + "_conv", prefix + "_bn", prefix + "_relu"), BN)
        else:
            x = mnv4_block(x, row, prefix, next(rates))

    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
        x = conv_bn_act(x, HEAD_FILTERS, 1, 1, "relu", ("head_conv", "head_bn", "head_relu"),
                        BN)
        x = layers.Flatten(name="flatten")(x)
        x = dense_classifier(x, classes, dropout_rate, classifier_activation)
    else:
        x = pool_features(x, pooling)
    return finish_model(inputs, x, model_name, weights, include_top)


def MobileNetV4ConvSmall(input_shape=None, include_top=True, weights=None, input_tensor=None,
                         pooling=None, classes=1000, classifier_activation="softmax",
                         dropout_rate=0.2, drop_path_rate=0.0):
    """Returns a MobileNetV4-Conv-S ``keras.Model`` (Qin et al. 2024, Table 10).

    Input: ``(None, rows, cols, 3)`` float32 images normalized with the ImageNet mean and
    standard deviation (``(x / 255 - mean) / std``, as TF Model Garden trains it). Output:
    ``(None, classes)`` class probabilities (softmax; logits with
    ``classifier_activation=None``); with ``include_top=False`` the stride-32 feature map
    ``(None, h, w, 960)``, or ``(None, 960)`` with ``pooling``.

    Args:
      input_shape: ``(rows, cols, channels)``, default ``(224, 224, 3)``; rows/cols >= 32.
      include_top: whether to include the head (1x1 conv 960 is part of the backbone; global
        pool, 1x1 conv 1280, dropout, dense).
      weights: None or the path of an ``.h5`` file saved from kerasnets with the same arguments.
      input_tensor: optional Keras tensor to use as the model's input.
      pooling: None, "avg" or "max" when ``include_top=False``.
      classes: number of classes.
      classifier_activation: activation of the classifier output, or None for logits.
      dropout_rate: dropout before the classifier.
      drop_path_rate: stochastic depth rate of the last block, rising linearly from 0 at the
        first; identity at inference. 0 disables it.

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    return _mobilenet_v4(CONV_SMALL, "mobilenetv4_conv_small", input_shape, include_top, weights,
                         input_tensor, pooling, classes, classifier_activation, dropout_rate,
                         drop_path_rate)


def MobileNetV4ConvMedium(input_shape=None, include_top=True, weights=None, input_tensor=None,
                          pooling=None, classes=1000, classifier_activation="softmax",
                          dropout_rate=0.2, drop_path_rate=0.0):
    """Returns a MobileNetV4-Conv-M ``keras.Model`` (Qin et al. 2024, Table 11; the
    paper evaluates it at 256x256).

    Input: ``(None, rows, cols, 3)`` float32 images normalized with the ImageNet mean and
    standard deviation (``(x / 255 - mean) / std``, as TF Model Garden trains it). Output:
    ``(None, classes)`` class probabilities (softmax; logits with
    ``classifier_activation=None``); with ``include_top=False`` the stride-32 feature map
    ``(None, h, w, 960)``, or ``(None, 960)`` with ``pooling``.

    Args:
      input_shape: ``(rows, cols, channels)``, default ``(224, 224, 3)``; rows/cols >= 32.
      include_top: whether to include the head (1x1 conv 960 is part of the backbone; global
        pool, 1x1 conv 1280, dropout, dense).
      weights: None or the path of an ``.h5`` file saved from kerasnets with the same arguments.
      input_tensor: optional Keras tensor to use as the model's input.
      pooling: None, "avg" or "max" when ``include_top=False``.
      classes: number of classes.
      classifier_activation: activation of the classifier output, or None for logits.
      dropout_rate: dropout before the classifier.
      drop_path_rate: stochastic depth rate of the last block, rising linearly from 0 at the
        first; identity at inference. 0 disables it.

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    return _mobilenet_v4(CONV_MEDIUM, "mobilenetv4_conv_medium", input_shape, include_top,
                         weights, input_tensor, pooling, classes, classifier_activation,
                         dropout_rate, drop_path_rate)


register_model("mobilenet_v4_conv_small", MobileNetV4ConvSmall, family="mobilenet_v4",
               default_size=224, min_size=32)
register_model("mobilenet_v4_conv_medium", MobileNetV4ConvMedium, family="mobilenet_v4",
               default_size=256, min_size=32)
