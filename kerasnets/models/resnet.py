"""ResNet-50/101 (He et al., 2016, "Deep Residual Learning for Image Recognition",
arXiv:1512.03385) and ResNeXt-50 32x4d (Xie et al., 2017, "Aggregated Residual Transformations
for Deep Neural Networks", arXiv:1611.05431).

Both are stacks of bottleneck blocks (1x1 reduce, 3x3, 1x1 expand, each followed by BatchNorm,
ReLU after the first two and after the residual addition). They differ in the 3x3 conv, which is
grouped in ResNeXt (cardinality 32, one ``Conv2D(groups=32)`` layer), and in two details that
follow the reference weights of each:

- ResNet follows keras.applications.ResNet50/101 (and the original Caffe model): convolutions
  have biases and a stage's stride-2 sits in the block's first 1x1 conv. Layer names are
  keras.applications', so its weight files load.
- ResNeXt follows its paper (section 4: "downsampling of conv3, 4, and 5 is done by stride-2
  convolutions in the 3x3 layer of the first block in each stage") and torchvision: no conv
  biases (BatchNorm follows each conv), the stride-2 3x3 conv padded by one pixel on each side.
"""

import collections

from kerasnets._keras import layers
from kerasnets.layers.blocks import (
    BNConfig, activation_layer, batch_norm, drop_path_rates, residual_add,
)
from kerasnets.models.convention import (
    check_common_args, check_rate, dense_classifier, model_input, pool_features,
)
from kerasnets.models.registry import register_model
from kerasnets.models.weights import finish_model

# A stage of bottleneck blocks: the width of its 1x1-reduce and 3x3 convs, its output channels,
# the number of blocks and the stride of its first block.
Stage = collections.namedtuple("Stage", "name width out blocks stride")

# Table 1 of the ResNet paper (50-layer and 101-layer columns): [1x1, w; 3x3, w; 1x1, 4w] x n.
RESNET50 = (
    Stage("conv2", 64, 256, 3, 1),    # C2: stride 4
    Stage("conv3", 128, 512, 4, 2),   # C3: stride 8
    Stage("conv4", 256, 1024, 6, 2),  # C4: stride 16
    Stage("conv5", 512, 2048, 3, 2),  # C5: stride 32
)
RESNET101 = (
    Stage("conv2", 64, 256, 3, 1),
    Stage("conv3", 128, 512, 4, 2),
    Stage("conv4", 256, 1024, 23, 2),
    Stage("conv5", 512, 2048, 3, 2),
)
# Table 1 of the ResNeXt paper (ResNeXt-50 32x4d column): [1x1, w; 3x3, w, C=32; 1x1, out] x n.
RESNEXT50_32X4D = (
    Stage("conv2", 128, 256, 3, 1),
    Stage("conv3", 256, 512, 4, 2),
    Stage("conv4", 512, 1024, 6, 2),
    Stage("conv5", 1024, 2048, 3, 2),
)
RESNEXT_CARDINALITY = 32

# The stem of both papers: 7x7 conv, 64 filters, stride 2, then a 3x3 max pool, stride 2.
STEM_FILTERS = 64

# How a variant places its details (see the module docstring).
Design = collections.namedtuple("Design", "groups use_bias stride_in_3x3")
KERAS_RESNET = Design(groups=1, use_bias=True, stride_in_3x3=False)
RESNEXT = Design(groups=RESNEXT_CARDINALITY, use_bias=False, stride_in_3x3=True)

BN = BNConfig(epsilon=1.001e-5, momentum=0.99)


def bottleneck(x, width, out, stride, design, name, drop_path_rate):
    """Returns the output of one bottleneck block named ``name`` (keras.applications' names:
    ``{name}_0_conv`` shortcut projection, ``{name}_1_conv`` .. ``{name}_3_conv``, ``_add``,
    ``_out``).

    The shortcut is a 1x1 projection (with BatchNorm) when the stride or the channels change,
    the identity otherwise (the papers' option B).
    """
    shortcut = x
    if stride != 1 or x.shape[-1] != out:
        shortcut = layers.Conv2D(out, 1, strides=stride, use_bias=design.use_bias,
                                 name=name + "_0_conv")(x)
        shortcut = batch_norm(shortcut, name + "_0_bn", BN)

    first_stride, mid_stride = (1, stride) if design.stride_in_3x3 else (stride, 1)
    x = layers.Conv2D(width, 1, strides=first_stride, use_bias=design.use_bias,
                      name=name + "_1_conv")(x)
    x = batch_norm(x, name + "_1_bn", BN)
    x = activation_layer("relu", name + "_1_relu")(x)
    if mid_stride == 1:
        padding = "same"
    else:
        # One pixel on each side, as the papers' reference code pads (TF 'same' would pad
        # only after the last row and column).
        x = layers.ZeroPadding2D(1, name=name + "_2_pad")(x)
        padding = "valid"
    x = layers.Conv2D(width, 3, strides=mid_stride, padding=padding, groups=design.groups,
                      use_bias=design.use_bias, name=name + "_2_conv")(x)
    x = batch_norm(x, name + "_2_bn", BN)
    x = activation_layer("relu", name + "_2_relu")(x)
    x = layers.Conv2D(out, 1, use_bias=design.use_bias, name=name + "_3_conv")(x)
    x = batch_norm(x, name + "_3_bn", BN)

    x = residual_add(shortcut, x, drop_path_rate, name + "_drop_path", name + "_add")
    return activation_layer("relu", name + "_out")(x)


def _resnet(table, design, model_name, input_shape, include_top, weights, input_tensor, pooling,
            classes, classifier_activation, dropout_rate, drop_path_rate):
    """Returns a ResNet/ResNeXt model decoded from ``table`` (stages in the paper's order)."""
    check_common_args(weights, include_top, pooling, classes, classifier_activation, dropout_rate)
    drop_path_rate = check_rate("drop_path_rate", drop_path_rate)
    img_input, inputs = model_input(input_shape, input_tensor, default_size=224, min_size=32,
                                    include_top=include_top, static_when_top=False)

    x = layers.ZeroPadding2D(3, name="conv1_pad")(img_input)
    x = layers.Conv2D(STEM_FILTERS, 7, strides=2, use_bias=design.use_bias,
                      name="conv1_conv")(x)
    x = batch_norm(x, "conv1_bn", BN)
    x = activation_layer("relu", "conv1_relu")(x)
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)

    rates = iter(drop_path_rates(drop_path_rate, sum(stage.blocks for stage in table)))
    for stage in table:
        for i in range(stage.blocks):
            x = bottleneck(x, stage.width, stage.out, stage.stride if i == 0 else 1, design,
                           f"{stage.name}_block{i + 1}", next(rates))

    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = dense_classifier(x, classes, dropout_rate, classifier_activation)
    else:
        x = pool_features(x, pooling)
    return finish_model(inputs, x, model_name, weights, include_top)


def ResNet50(input_shape=None, include_top=True, weights=None, input_tensor=None, pooling=None,
             classes=1000, classifier_activation="softmax", dropout_rate=0.0,
             drop_path_rate=0.0):
    """Returns a ResNet-50 ``keras.Model`` (He et al. 2016, Table 1, 50-layer column;
    keras.applications.ResNet50's layers and convention).

    Input: ``(None, rows, cols, 3)`` float32 images preprocessed as
    ``keras.applications.resnet.preprocess_input`` does ("caffe": RGB to BGR, minus the ImageNet
    BGR mean, no scaling). Output: ``(None, classes)`` class probabilities (softmax; logits with
    ``classifier_activation=None``); with ``include_top=False`` the stride-32 feature map
    ``(None, h, w, 2048)``, or ``(None, 2048)`` with ``pooling``.

    Args:
      input_shape: ``(rows, cols, channels)``, default ``(224, 224, 3)``; rows/cols >= 32.
      include_top: whether to include the classifier (global average pool, dense).
      weights: None or the path of an ``.h5`` file saved from kerasnets or
        keras.applications.ResNet50 with the same arguments.
      input_tensor: optional Keras tensor to use as the model's input.
      pooling: None, "avg" or "max" when ``include_top=False``.
      classes: number of classes.
      classifier_activation: activation of the classifier output, or None for logits.
      dropout_rate: dropout before the classifier (0 = none, as keras.applications).
      drop_path_rate: stochastic depth rate of the last residual block, rising linearly from 0
        at the first block; identity at inference. 0 disables it.

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    return _resnet(RESNET50, KERAS_RESNET, "resnet50", input_shape, include_top, weights,
                   input_tensor, pooling, classes, classifier_activation, dropout_rate,
                   drop_path_rate)


def ResNet101(input_shape=None, include_top=True, weights=None, input_tensor=None, pooling=None,
              classes=1000, classifier_activation="softmax", dropout_rate=0.0,
              drop_path_rate=0.0):
    """Returns a ResNet-101 ``keras.Model`` (He et al. 2016, Table 1, 101-layer column;
    keras.applications.ResNet101's layers and convention).

    Input: ``(None, rows, cols, 3)`` float32 images preprocessed as
    ``keras.applications.resnet.preprocess_input`` does ("caffe": RGB to BGR, minus the ImageNet
    BGR mean, no scaling). Output: ``(None, classes)`` class probabilities (softmax; logits with
    ``classifier_activation=None``); with ``include_top=False`` the stride-32 feature map
    ``(None, h, w, 2048)``, or ``(None, 2048)`` with ``pooling``.

    Args:
      input_shape: ``(rows, cols, channels)``, default ``(224, 224, 3)``; rows/cols >= 32.
      include_top: whether to include the classifier (global average pool, dense).
      weights: None or the path of an ``.h5`` file saved from kerasnets or
        keras.applications.ResNet101 with the same arguments.
      input_tensor: optional Keras tensor to use as the model's input.
      pooling: None, "avg" or "max" when ``include_top=False``.
      classes: number of classes.
      classifier_activation: activation of the classifier output, or None for logits.
      dropout_rate: dropout before the classifier (0 = none, as keras.applications).
      drop_path_rate: stochastic depth rate of the last residual block, rising linearly from 0
        at the first block; identity at inference. 0 disables it.

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    return _resnet(RESNET101, KERAS_RESNET, "resnet101", input_shape, include_top, weights,
                   input_tensor, pooling, classes, classifier_activation, dropout_rate,
                   drop_path_rate)


def ResNeXt50_32x4d(input_shape=None, include_top=True, weights=None, input_tensor=None,
                    pooling=None, classes=1000, classifier_activation="softmax",
                    dropout_rate=0.0, drop_path_rate=0.0):
    """Returns a ResNeXt-50 (32x4d) ``keras.Model`` (Xie et al. 2017, Table 1:
    cardinality 32, bottleneck width 4 per group; torchvision's resnext50_32x4d).

    Input: ``(None, rows, cols, 3)`` float32 images preprocessed as
    ``keras.applications.resnet.preprocess_input`` does ("caffe": RGB to BGR, minus the ImageNet
    BGR mean, no scaling). Output: ``(None, classes)`` class probabilities (softmax; logits with
    ``classifier_activation=None``); with ``include_top=False`` the stride-32 feature map
    ``(None, h, w, 2048)``, or ``(None, 2048)`` with ``pooling``.

    Args:
      input_shape: ``(rows, cols, channels)``, default ``(224, 224, 3)``; rows/cols >= 32.
      include_top: whether to include the classifier (global average pool, dense).
      weights: None or the path of an ``.h5`` file saved from kerasnets with the same
        arguments.
      input_tensor: optional Keras tensor to use as the model's input.
      pooling: None, "avg" or "max" when ``include_top=False``.
      classes: number of classes.
      classifier_activation: activation of the classifier output, or None for logits.
      dropout_rate: dropout before the classifier (0 = none, as keras.applications).
      drop_path_rate: stochastic depth rate of the last residual block, rising linearly from 0
        at the first block; identity at inference. 0 disables it.

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    return _resnet(RESNEXT50_32X4D, RESNEXT, "resnext50_32x4d", input_shape, include_top,
                   weights, input_tensor, pooling, classes, classifier_activation, dropout_rate,
                   drop_path_rate)


register_model("resnet50", ResNet50, family="resnet", default_size=224, min_size=32,
               keras_twin="ResNet50")
register_model("resnet101", ResNet101, family="resnet", default_size=224, min_size=32,
               keras_twin="ResNet101")
register_model("resnext50_32x4d", ResNeXt50_32x4d, family="resnet", default_size=224,
               min_size=32)
