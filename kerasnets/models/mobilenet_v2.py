"""MobileNetV2 (Sandler et al., 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
arXiv:1801.04381).

Layer names are those of keras.applications.MobileNetV2, so its weight files load.
"""

from kerasnets._keras import layers
from kerasnets.layers.blocks import (
    BNConfig, V2_NAMES, conv_bn_act, drop_path_rates, inverted_residual, make_divisible,
)
from kerasnets.models.convention import (
    check_common_args, check_positive_number, check_rate, dense_classifier, model_input,
    pool_features,
)
from kerasnets.models.registry import register_model
from kerasnets.models.weights import finish_model

# Table 2 of the paper: (t expansion factor, c output channels, n repeats, s first stride).
STEM_FILTERS = 32
BOTTLENECKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),   # C2: stride 4
    (6, 32, 3, 2),   # C3: stride 8
    (6, 64, 4, 2),   # C4: stride 16
    (6, 96, 3, 1),
    (6, 160, 3, 2),  # C5: stride 32
    (6, 320, 1, 1),
)
LAST_FILTERS = 1280
BN = BNConfig(epsilon=1e-3, momentum=0.999)


def MobileNetV2(input_shape=None, alpha=1.0, include_top=True, weights=None, input_tensor=None,
                pooling=None, classes=1000, dropout_rate=0.0, classifier_activation="softmax",
                drop_path_rate=0.0, linear_bottleneck=True):
    """Returns a MobileNetV2 ``keras.Model`` (Sandler et al. 2018, Table 2;
    keras.applications.MobileNetV2's convention and layer names).

    Input: ``(None, rows, cols, 3)`` float32 images in [-1, 1] (``x / 127.5 - 1``,
    keras.applications' "tf" preprocessing). Output: ``(None, classes)`` class probabilities
    (softmax; logits with ``classifier_activation=None``); with ``include_top=False`` the
    stride-32 feature map ``(None, h, w, channels)``, or ``(None, channels)`` with ``pooling``.

    Args:
      input_shape: ``(rows, cols, channels)``, default ``(224, 224, 3)``; rows/cols >= 32.
      alpha: width multiplier (> 0); channels are rounded to multiples of 8 as in the paper's code.
      include_top: whether to include the classifier (global average pool, dense).
      weights: None or the path of an ``.h5`` file saved from kerasnets or
        keras.applications.MobileNetV2 with the same arguments.
      input_tensor: optional Keras tensor to use as the model's input.
      pooling: None, "avg" or "max" when ``include_top=False``.
      classes: number of classes.
      dropout_rate: dropout before the classifier (0 = none, as keras.applications).
      classifier_activation: activation of the classifier output, or None for logits.
      drop_path_rate: stochastic depth rate of the last residual block, rising linearly from 0
        over the residual blocks; identity at inference. 0 disables it.
      linear_bottleneck: True (the paper's block: no activation after the 1x1 projection) or
        False, the ablation of the paper's Fig. 6a: ReLU6 after every projection (layers
        ``*project_relu``), before the shortcut. No weights change, so weight files load either
        way.

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    check_common_args(weights, include_top, pooling, classes, classifier_activation, dropout_rate)
    alpha = check_positive_number("alpha", alpha)
    drop_path_rate = check_rate("drop_path_rate", drop_path_rate)
    if not isinstance(linear_bottleneck, bool):
        raise ValueError("`linear_bottleneck` must be True or False; received "
                         f"linear_bottleneck={linear_bottleneck!r}")
    img_input, inputs = model_input(input_shape, input_tensor, default_size=224, min_size=32,
                                    include_top=include_top, static_when_top=False)

    x = conv_bn_act(img_input, make_divisible(STEM_FILTERS * alpha), 3, 2, "relu6",
                    ("Conv1", "bn_Conv1", "Conv1_relu"), BN)
    rates = drop_path_rates(drop_path_rate, sum(n for _, _, n, _ in BOTTLENECKS))
    block_id = 0
    for expansion, channels, repeats, first_stride in BOTTLENECKS:
        filters = make_divisible(int(channels * alpha))
        for i in range(repeats):
            in_channels = x.shape[-1]
            x = inverted_residual(
                x,
                expanded=None if block_id == 0 else expansion * in_channels,
                filters=filters, kernel_size=3, strides=first_stride if i == 0 else 1,
                activation="relu6", squeeze_filters=None,
                prefix="expanded_conv_" if block_id == 0 else f"block_{block_id}_",
                names=V2_NAMES, bn=BN,
                drop_path_rate=rates[block_id],
                project_activation=None if linear_bottleneck else "relu6",
            )
            block_id += 1

    last = make_divisible(LAST_FILTERS * alpha) if alpha > 1.0 else LAST_FILTERS
    x = conv_bn_act(x, last, 1, 1, "relu6", ("Conv_1", "Conv_1_bn", "out_relu"), BN)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
        x = dense_classifier(x, classes, dropout_rate, classifier_activation)
    else:
        x = pool_features(x, pooling)
    rows = img_input.shape[1]
    return finish_model(inputs, x, f"mobilenetv2_{alpha:0.2f}_{rows}", weights, include_top)


register_model("mobilenet_v2", MobileNetV2, family="mobilenet_v2", default_size=224,
               min_size=32, keras_twin="MobileNetV2")
