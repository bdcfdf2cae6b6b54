"""MobileNetV1 (Howard et al., 2017, "MobileNets: Efficient Convolutional Neural Networks for
Mobile Vision Applications", arXiv:1704.04861).

Layer names and head are those of keras.applications.MobileNet, so its weight files load.
"""

from kerasnets._keras import layers
from kerasnets.layers.blocks import BNConfig, conv_bn_act, depthwise_separable
from kerasnets.models.convention import (
    check_common_args, check_positive_int, check_positive_number, conv_classifier, model_input,
    pool_features,
)
from kerasnets.models.registry import register_model
from kerasnets.models.weights import finish_model

# Table 1 of the paper, one row per depthwise separable layer after the first full conv
# (Conv / s2, 3x3x3x32). (stride of the depthwise conv, pointwise output channels).
# The paper's table prints s2 for the last depthwise conv; its 7x7 output and every reference
# implementation make it s1.
STEM_FILTERS = 32
BLOCKS = (
    (1, 64),
    (2, 128),   # C2: stride 4
    (1, 128),
    (2, 256),   # C3: stride 8
    (1, 256),
    (2, 512),   # C4: stride 16
    (1, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (2, 1024),  # C5: stride 32
    (1, 1024),
)
BN = BNConfig(epsilon=1e-3, momentum=0.99)


def MobileNetV1(input_shape=None, alpha=1.0, depth_multiplier=1, include_top=True, weights=None,
                input_tensor=None, pooling=None, classes=1000, dropout_rate=1e-3,
                classifier_activation="softmax"):
    """Returns a MobileNetV1 ``keras.Model`` (Howard et al. 2017, Table 1;
    keras.applications.MobileNet's convention and layer names).

    Input: ``(None, rows, cols, 3)`` float32 images in [-1, 1] (``x / 127.5 - 1``,
    keras.applications' "tf" preprocessing). Output: ``(None, classes)`` class probabilities
    (softmax; logits with ``classifier_activation=None``); with ``include_top=False`` the
    stride-32 feature map ``(None, h, w, channels)``, or ``(None, channels)`` with ``pooling``.

    Args:
      input_shape: ``(rows, cols, channels)``, default ``(224, 224, 3)``; rows/cols >= 32.
      alpha: width multiplier (paper section 4.2): scales every layer's channels; > 0.
      depth_multiplier: resolution-independent channel multiplier of the depthwise convs.
      include_top: whether to include the classifier (global pool, dropout, 1x1 conv).
      weights: None (random initialization) or the path of an ``.h5`` weights file saved from
        kerasnets or keras.applications.MobileNet with the same arguments.
      input_tensor: optional Keras tensor to use as the model's input.
      pooling: None, "avg" or "max": pooling of the features when ``include_top=False``.
      classes: number of classes of the classifier.
      dropout_rate: dropout before the classifier (keras.applications' ``dropout``).
      classifier_activation: activation of the classifier output, or None for logits.

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    check_common_args(weights, include_top, pooling, classes, classifier_activation, dropout_rate)
    alpha = check_positive_number("alpha", alpha)
    if int(STEM_FILTERS * alpha) < 1:
        raise ValueError(
            f"`alpha` must be at least {1 / STEM_FILTERS} so that every layer keeps a channel; "
            f"received alpha={alpha!r}"
        )
    depth_multiplier = check_positive_int("depth_multiplier", depth_multiplier)
    img_input, inputs = model_input(input_shape, input_tensor, default_size=224, min_size=32,
                                    include_top=include_top)

    x = conv_bn_act(img_input, int(STEM_FILTERS * alpha), 3, 2, "relu6",
                    ("conv1", "conv1_bn", "conv1_relu"), BN)
    for block_id, (strides, filters) in enumerate(BLOCKS, start=1):
        x = depthwise_separable(x, int(filters * alpha), strides, depth_multiplier, block_id, BN)

    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True, name="global_average_pooling2d")(x)
        x = conv_classifier(x, classes, dropout_rate, classifier_activation, "conv_preds",
                            "predictions")
    else:
        x = pool_features(x, pooling)
    rows = img_input.shape[1]
    return finish_model(inputs, x, f"mobilenet_{alpha:0.2f}_{rows}", weights, include_top)


MobileNet = MobileNetV1

register_model("mobilenet_v1", MobileNetV1, family="mobilenet_v1", default_size=224,
               min_size=32, keras_twin="MobileNet")
