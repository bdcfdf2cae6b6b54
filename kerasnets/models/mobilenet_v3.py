"""MobileNetV3-Large and -Small (Howard et al., 2019, "Searching for MobileNetV3",
arXiv:1905.02244).

Hard-swish and hard-sigmoid are kerasnets layers (not raw TF ops), so the models quantize with
``kerasnets.quantization.qat`` and serialize cleanly. Layer names are keras.applications.MobileNetV3's, so its
weight files load. Like keras.applications (and unlike the paper's table) the head's first 1x1
conv has a bias and no BatchNorm after pooling.
"""

import collections

from kerasnets._keras import layers
from kerasnets.layers.blocks import (
    BNConfig, V3_NAMES, activation_layer, conv_bn_act, drop_path_rates, inverted_residual,
    make_divisible,
)
from kerasnets.models.convention import (
    check_common_args, check_positive_number, check_rate, conv_classifier, model_input,
    pool_features,
)
from kerasnets.models.registry import register_model
from kerasnets.models.weights import finish_model

Bneck = collections.namedtuple("Bneck", "kernel exp out se nl stride")
RE, HS = "relu", "hard_swish"

# Table 1 of the paper (MobileNetV3-Large): kernel, exp size, #out, SE, NL, s.
LARGE = (
    Bneck(3, 16, 16, False, RE, 1),
    Bneck(3, 64, 24, False, RE, 2),    # C2: stride 4
    Bneck(3, 72, 24, False, RE, 1),
    Bneck(5, 72, 40, True, RE, 2),     # C3: stride 8
    Bneck(5, 120, 40, True, RE, 1),
    Bneck(5, 120, 40, True, RE, 1),
    Bneck(3, 240, 80, False, HS, 2),   # C4: stride 16
    Bneck(3, 200, 80, False, HS, 1),
    Bneck(3, 184, 80, False, HS, 1),
    Bneck(3, 184, 80, False, HS, 1),
    Bneck(3, 480, 112, True, HS, 1),
    Bneck(3, 672, 112, True, HS, 1),
    Bneck(5, 672, 160, True, HS, 2),   # C5: stride 32
    Bneck(5, 960, 160, True, HS, 1),
    Bneck(5, 960, 160, True, HS, 1),
)
LARGE_LAST_POINT = 1280

# Table 2 of the paper (MobileNetV3-Small).
SMALL = (
    Bneck(3, 16, 16, True, RE, 2),     # C2: stride 4
    Bneck(3, 72, 24, False, RE, 2),    # C3: stride 8
    Bneck(3, 88, 24, False, RE, 1),
    Bneck(5, 96, 40, True, HS, 2),     # C4: stride 16
    Bneck(5, 240, 40, True, HS, 1),
    Bneck(5, 240, 40, True, HS, 1),
    Bneck(5, 120, 48, True, HS, 1),
    Bneck(5, 144, 48, True, HS, 1),
    Bneck(5, 288, 96, True, HS, 2),    # C5: stride 32
    Bneck(5, 576, 96, True, HS, 1),
    Bneck(5, 576, 96, True, HS, 1),
)
SMALL_LAST_POINT = 1024

STEM_FILTERS = 16
SE_RATIO = 0.25
LAST_CONV_EXPANSION = 6  # the 1x1 conv after the last bneck: 6x its channels (960 / 576)
BN = BNConfig(epsilon=1e-3, momentum=0.999)


ACTIVATION_CHOICES = (HS, RE)


def _mobilenet_v3(table, last_point, model_type, input_shape, alpha, minimalistic, include_top,
                  weights, input_tensor, classes, pooling, dropout_rate, classifier_activation,
                  include_preprocessing, drop_path_rate, activation, se):
    """Returns a MobileNetV3 model decoded from ``table`` (rows in the paper's order)."""
    check_common_args(weights, include_top, pooling, classes, classifier_activation, dropout_rate)
    alpha = check_positive_number("alpha", alpha)
    drop_path_rate = check_rate("drop_path_rate", drop_path_rate)
    if not isinstance(minimalistic, bool):
        raise ValueError(f"`minimalistic` must be True or False; received {minimalistic!r}")
    if not isinstance(include_preprocessing, bool):
        raise ValueError(
            f"`include_preprocessing` must be True or False; received {include_preprocessing!r}"
        )
    if activation not in ACTIVATION_CHOICES:
        raise ValueError(f"`activation` must be one of {ACTIVATION_CHOICES}; received "
                         f"activation={activation!r}")
    if not isinstance(se, bool):
        raise ValueError(f"`se` must be True or False; received se={se!r}")
    img_input, inputs = model_input(input_shape, input_tensor, default_size=None, min_size=32,
                                    include_top=include_top, static_when_top=False)

    # The minimalistic variant (keras.applications, TF-Slim): no SE, ReLU for hard-swish, and
    # 3x3 depthwise kernels. activation="relu" alone is the ablation of the paper's Table 5
    # (ReLU where the paper uses hard-swish); the SE gate keeps its hard-sigmoid.
    def nl(kind):
        return RE if minimalistic or activation == RE else kind

    x = img_input
    if include_preprocessing:
        x = layers.Rescaling(scale=1.0 / 127.5, offset=-1.0, name="rescaling")(x)
    x = conv_bn_act(x, STEM_FILTERS, 3, 2, nl(HS), ("Conv", "Conv/BatchNorm", "Conv/activation"),
                    BN)

    in_paper = STEM_FILTERS
    rates = drop_path_rates(drop_path_rate, len(table))
    for block_id, row in enumerate(table):
        in_channels = x.shape[-1]
        # The expansion is the paper's ratio exp/in applied to the (alpha-scaled) input, the way
        # the reference code rounds it.
        expanded = make_divisible(in_channels * (row.exp / in_paper))
        x = inverted_residual(
            x,
            expanded=None if block_id == 0 else expanded,
            filters=make_divisible(row.out * alpha),
            kernel_size=3 if minimalistic else row.kernel,
            strides=row.stride,
            activation=nl(row.nl),
            squeeze_filters=(make_divisible(expanded * SE_RATIO)
                             if row.se and se and not minimalistic else None),
            prefix="expanded_conv/" if block_id == 0 else f"expanded_conv_{block_id}/",
            names=V3_NAMES, bn=BN,
            drop_path_rate=rates[block_id],
        )
        in_paper = row.out

    last_conv = make_divisible(x.shape[-1] * LAST_CONV_EXPANSION)
    if alpha > 1.0:
        last_point = make_divisible(last_point * alpha)
    x = conv_bn_act(x, last_conv, 1, 1, nl(HS), ("Conv_1", "Conv_1/BatchNorm", "Conv_1/activation"),
                    BN)
    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
        x = layers.Conv2D(last_point, 1, padding="same", use_bias=True, name="Conv_2")(x)
        x = activation_layer(nl(HS), "Conv_2/activation")(x)
        x = conv_classifier(x, classes, dropout_rate, classifier_activation, "Logits",
                            "Predictions")
    else:
        x = pool_features(x, pooling)
    return finish_model(inputs, x, "MobilenetV3" + model_type, weights, include_top)


def MobileNetV3Large(input_shape=None, alpha=1.0, minimalistic=False, include_top=True,
                     weights=None, input_tensor=None, classes=1000, pooling=None,
                     dropout_rate=0.2, classifier_activation="softmax",
                     include_preprocessing=True, drop_path_rate=0.0, activation=HS, se=True):
    """Returns a MobileNetV3-Large ``keras.Model`` (Howard et al. 2019, Table 1;
    keras.applications.MobileNetV3Large's convention and layer names).

    Input: ``(None, rows, cols, 3)`` float32 images in [0, 255] (in [-1, 1] with
    ``include_preprocessing=False``). Output: ``(None, classes)`` class probabilities (softmax;
    logits with ``classifier_activation=None``); with ``include_top=False`` the stride-32
    feature map ``(None, h, w, channels)``, or ``(None, channels)`` with ``pooling``.

    Args:
      input_shape: ``(rows, cols, channels)``; default ``(None, None, 3)``; rows/cols >= 32.
      alpha: width multiplier (> 0) of the bottleneck channels (the stem and, for alpha <= 1,
        the head keep the paper's widths, as keras.applications).
      minimalistic: the variant without SE, hard-swish and 5x5 kernels.
      include_top: whether to include the classifier head.
      weights: None or the path of an ``.h5`` file saved from kerasnets or
        keras.applications.MobileNetV3Large with the same arguments.
      input_tensor: optional Keras tensor to use as the model's input.
      classes: number of classes.
      pooling: None, "avg" or "max" when ``include_top=False``.
      dropout_rate: dropout before the last 1x1 conv of the head.
      classifier_activation: activation of the classifier output, or None for logits.
      include_preprocessing: rescale inputs from [0, 255] to [-1, 1] inside the model.
      drop_path_rate: stochastic depth rate of the last residual block, rising linearly from 0;
        identity at inference. 0 disables it.
      activation: "hard_swish" (the paper's) or "relu": the ablation with ReLU wherever the
        paper's NL column (and its stem and head) use hard-swish (paper Table 5 compares them).
      se: True (the paper's) or False: the ablation without squeeze-and-excite in the blocks
        whose SE column is checked (the SE convs' parameters go away).

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    return _mobilenet_v3(LARGE, LARGE_LAST_POINT, "large", input_shape, alpha, minimalistic,
                         include_top, weights, input_tensor, classes, pooling, dropout_rate,
                         classifier_activation, include_preprocessing, drop_path_rate,
                         activation, se)


def MobileNetV3Small(input_shape=None, alpha=1.0, minimalistic=False, include_top=True,
                     weights=None, input_tensor=None, classes=1000, pooling=None,
                     dropout_rate=0.2, classifier_activation="softmax",
                     include_preprocessing=True, drop_path_rate=0.0, activation=HS, se=True):
    """Returns a MobileNetV3-Small ``keras.Model`` (Howard et al. 2019, Table 2;
    keras.applications.MobileNetV3Small's convention and layer names).

    Input: ``(None, rows, cols, 3)`` float32 images in [0, 255] (in [-1, 1] with
    ``include_preprocessing=False``). Output: ``(None, classes)`` class probabilities (softmax;
    logits with ``classifier_activation=None``); with ``include_top=False`` the stride-32
    feature map ``(None, h, w, channels)``, or ``(None, channels)`` with ``pooling``.

    Args:
      input_shape: ``(rows, cols, channels)``; default ``(None, None, 3)``; rows/cols >= 32.
      alpha: width multiplier (> 0) of the bottleneck channels (the stem and, for alpha <= 1,
        the head keep the paper's widths, as keras.applications).
      minimalistic: the variant without SE, hard-swish and 5x5 kernels.
      include_top: whether to include the classifier head.
      weights: None or the path of an ``.h5`` file saved from kerasnets or
        keras.applications.MobileNetV3Small with the same arguments.
      input_tensor: optional Keras tensor to use as the model's input.
      classes: number of classes.
      pooling: None, "avg" or "max" when ``include_top=False``.
      dropout_rate: dropout before the last 1x1 conv of the head.
      classifier_activation: activation of the classifier output, or None for logits.
      include_preprocessing: rescale inputs from [0, 255] to [-1, 1] inside the model.
      drop_path_rate: stochastic depth rate of the last residual block, rising linearly from 0;
        identity at inference. 0 disables it.
      activation: "hard_swish" (the paper's) or "relu": the ablation with ReLU wherever the
        paper's NL column (and its stem and head) use hard-swish (paper Table 5 compares them).
      se: True (the paper's) or False: the ablation without squeeze-and-excite in the blocks
        whose SE column is checked (the SE convs' parameters go away).

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    return _mobilenet_v3(SMALL, SMALL_LAST_POINT, "small", input_shape, alpha, minimalistic,
                         include_top, weights, input_tensor, classes, pooling, dropout_rate,
                         classifier_activation, include_preprocessing, drop_path_rate,
                         activation, se)


register_model("mobilenet_v3_large", MobileNetV3Large, family="mobilenet_v3", default_size=224,
               min_size=32, keras_twin="MobileNetV3Large")
register_model("mobilenet_v3_small", MobileNetV3Small, family="mobilenet_v3", default_size=224,
               min_size=32, keras_twin="MobileNetV3Small")
register_model("mobilenet_v3_large_minimalistic", MobileNetV3Large, family="mobilenet_v3",
               default_size=224, min_size=32, keras_twin="MobileNetV3Large", minimalistic=True)
register_model("mobilenet_v3_small_minimalistic", MobileNetV3Small, family="mobilenet_v3",
               default_size=224, min_size=32, keras_twin="MobileNetV3Small", minimalistic=True)
