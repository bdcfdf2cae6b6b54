"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012, "ImageNet Classification with Deep
Convolutional Neural Networks", NIPS) in torchvision's single-tower form, and ZFNet (Zeiler &
Fergus, 2014, "Visualizing and Understanding Convolutional Networks", ECCV, arXiv:1311.2901) as
its variant.

Five convolutions (ReLU; max pools of 3x3, stride 2, after the 1st, 2nd and 5th), then three
fully connected layers with dropout on the inputs of the first two.

- ``AlexNet`` is torchvision's ``alexnet``: 64, 192, 384, 256, 256 filters in one tower, the
  form of Krizhevsky's "One weird trick for parallelizing convolutional neural networks" (2014,
  arXiv:1404.5997); 61,100,840 parameters. The 2012 original split the network over two GPUs:
  96, 256, 384, 384, 256 filters, with conv2, conv4 and conv5 seeing only the half of the
  previous layer on their own GPU (grouped convolutions, 2 groups; paper section 3.2 and
  Figure 2), and local response normalization after conv1 and conv2 (section 3.3); "60 million
  parameters" (abstract).
- ``ZFNet`` is Zeiler & Fergus's model (their Figure 3; the change their "Architecture
  Selection" paragraph and Fig. 6 argue for, and Table 1 scores against Krizhevsky et al.): a
  7x7 stride-2 first conv instead of 11x11 stride 4 (which left aliasing and dead filters),
  conv2 with stride 2, the original's 96, 256, 384, 384, 256 filters, dense (single-GPU)
  connections throughout.

Neither has the papers' local (contrast) normalization layers: torchvision dropped them, later
work found them of no use (VGG, Simonyan & Zisserman 2015, Table 3, A-LRN), and TFLite's
LOCAL_RESPONSE_NORMALIZATION kernel is float-only, which would break the int8 conversion every
kerasnets model gets. The head flattens the last feature map (6x6x256 at 224x224, as in both
papers); at other input sizes fc6's input size follows the map (keras.applications VGG16's
rule), where torchvision would resample it to 6x6 with an adaptive average pool.
"""

import collections

from kerasnets._keras import layers
from kerasnets.models.convention import (
    check_common_args, fully_connected_head, model_input, pool_features,
)
from kerasnets.models.registry import register_model
from kerasnets.models.weights import finish_model

# One row per conv layer: filters, kernel, stride, zero padding (pixels on every side, as the
# reference code pads) and the 3x3 stride-2 max pool after it: None, "valid" (floor rounding)
# or "same" (for even sizes Caffe's ceil rounding, which gives Zeiler & Fergus's 55 and 13).
Conv = collections.namedtuple("Conv", "filters kernel stride padding pool")

# torchvision models/alexnet.py: 224 -> 55 -> 27 -> 27 -> 13 -> 13 -> 13 -> 13 -> 6.
ALEXNET = (
    Conv(64, 11, 4, 2, "valid"),      # C2: stride 4
    Conv(192, 5, 1, 2, "valid"),      # C3: stride 8
    Conv(384, 3, 1, 1, None),
    Conv(256, 3, 1, 1, None),
    Conv(256, 3, 1, 1, "valid"),      # C4: stride 16; its pool C5: stride 32
)
# Zeiler & Fergus Figure 3: 224 -> 110 -> 55 -> 26 -> 13 -> 13 -> 13 -> 13 -> 6.
ZFNET = (
    Conv(96, 7, 2, 1, "same"),        # stride 2; its pool C2: stride 4
    Conv(256, 5, 2, 0, "same"),       # C3: stride 8
    Conv(384, 3, 1, 1, None),
    Conv(384, 3, 1, 1, None),
    Conv(256, 3, 1, 1, "valid"),      # C4: stride 16; its pool C5: stride 32
)
FC_UNITS = 4096  # fc6 and fc7 of both papers
MIN_SIZE = {"alexnet": 63, "zfnet": 53}  # the smallest inputs that leave a 1x1 map at pool5


def _alexnet(table, model_name, include_top, weights, input_tensor, input_shape, pooling,
             classes, classifier_activation, dropout_rate):
    """Returns an AlexNet-family model decoded from ``table`` (one row per conv layer)."""
    check_common_args(weights, include_top, pooling, classes, classifier_activation, dropout_rate)
    img_input, inputs = model_input(input_shape, input_tensor, default_size=224,
                                    min_size=MIN_SIZE[model_name], include_top=include_top,
                                    static_when_top=True)
    x = img_input
    for i, row in enumerate(table, start=1):
        padding = "same" if row.stride == 1 and 2 * row.padding == row.kernel - 1 else "valid"
        if padding == "valid" and row.padding:
            x = layers.ZeroPadding2D(row.padding, name=f"conv{i}_pad")(x)
        x = layers.Conv2D(row.filters, row.kernel, strides=row.stride, padding=padding,
                          activation="relu", name=f"conv{i}")(x)
        if row.pool is not None:
            x = layers.MaxPooling2D(3, strides=2, padding=row.pool, name=f"pool{i}")(x)

    if include_top:
        # torchvision: Dropout, Linear, ReLU for fc6 and fc7 (the papers' dropout 0.5).
        x = fully_connected_head(x, ("fc6", "fc7"), FC_UNITS, dropout_rate, True, classes,
                                 classifier_activation)
    else:
        x = pool_features(x, pooling)
    return finish_model(inputs, x, model_name, weights, include_top)


def AlexNet(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
            classes=1000, classifier_activation="softmax", dropout_rate=0.5):
    """Returns an AlexNet ``keras.Model`` in torchvision's single-tower form (Krizhevsky
    2014; 61,100,840 parameters at 224x224 with 1000 classes; the module docstring describes the
    two-GPU original of Krizhevsky et al. 2012).

    Input: ``(None, rows, cols, 3)`` float32 images normalized with the ImageNet mean and
    standard deviation (``(x / 255 - mean) / std``, torchvision's AlexNet recipe). Output:
    ``(None, classes)`` class probabilities (softmax; logits with
    ``classifier_activation=None``); with ``include_top=False`` the pool5 feature map
    ``(None, h, w, 256)`` (6x6 at 224x224), or ``(None, 256)`` with ``pooling``.

    Args:
      include_top: whether to include the fully connected layers (flatten, fc6, fc7,
        predictions); they need a static input size, and fc6's parameters depend on it.
      weights: None or the path of an ``.h5`` file saved from kerasnets with the same arguments.
      input_tensor: optional Keras tensor to use as the model's input.
      input_shape: ``(rows, cols, channels)``, default ``(224, 224, 3)``; rows/cols >= 63.
      pooling: None, "avg" or "max" when ``include_top=False``.
      classes: number of classes.
      classifier_activation: activation of the classifier output, or None for logits.
      dropout_rate: dropout on the inputs of fc6 and fc7 (the papers' 0.5).

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    return _alexnet(ALEXNET, "alexnet", include_top, weights, input_tensor, input_shape,
                    pooling, classes, classifier_activation, dropout_rate)


def ZFNet(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
          classes=1000, classifier_activation="softmax", dropout_rate=0.5):
    """Returns a ZFNet ``keras.Model`` (Zeiler & Fergus 2014, Figure 3: 7x7 stride-2 first
    conv; 62,357,608 parameters at 224x224 with 1000 classes).

    Input: ``(None, rows, cols, 3)`` float32 images normalized with the ImageNet mean and
    standard deviation (``(x / 255 - mean) / std``, torchvision's AlexNet recipe). Output:
    ``(None, classes)`` class probabilities (softmax; logits with
    ``classifier_activation=None``); with ``include_top=False`` the pool5 feature map
    ``(None, h, w, 256)`` (6x6 at 224x224), or ``(None, 256)`` with ``pooling``.

    Args:
      include_top: whether to include the fully connected layers (flatten, fc6, fc7,
        predictions); they need a static input size, and fc6's parameters depend on it.
      weights: None or the path of an ``.h5`` file saved from kerasnets with the same arguments.
      input_tensor: optional Keras tensor to use as the model's input.
      input_shape: ``(rows, cols, channels)``, default ``(224, 224, 3)``; rows/cols >= 53.
      pooling: None, "avg" or "max" when ``include_top=False``.
      classes: number of classes.
      classifier_activation: activation of the classifier output, or None for logits.
      dropout_rate: dropout on the inputs of fc6 and fc7 (the papers' 0.5).

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    return _alexnet(ZFNET, "zfnet", include_top, weights, input_tensor, input_shape, pooling,
                    classes, classifier_activation, dropout_rate)


register_model("alexnet", AlexNet, family="alexnet", default_size=224,
               min_size=MIN_SIZE["alexnet"])
register_model("zfnet", ZFNet, family="alexnet", default_size=224, min_size=MIN_SIZE["zfnet"])
