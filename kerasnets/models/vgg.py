"""VGG-16 and VGG-19 (Simonyan & Zisserman, 2015, "Very Deep Convolutional Networks for
Large-Scale Image Recognition", arXiv:1409.1556).

Stacks of 3x3 convolutions (stride 1, 'same' padding, ReLU) in five stages, each closed by a
2x2 max pool of stride 2, then three fully connected layers. Layer names, the ReLU inside each
conv layer and the head follow keras.applications.VGG16/VGG19, so their ``.h5`` files load.
"""

import collections

from kerasnets._keras import layers
from kerasnets.models.convention import (
    check_common_args, fully_connected_head, model_input, pool_features,
)
from kerasnets.models.registry import register_model
from kerasnets.models.weights import finish_model

# A stage of the paper's Table 1: the 3x3 conv layers' channels and how many there are.
Stage = collections.namedtuple("Stage", "filters convs")

# Table 1, configuration D (VGG-16): conv3-64 x2, conv3-128 x2, conv3-256 x3, conv3-512 x3 x2.
VGG16_STAGES = (
    Stage(64, 2),     # block1, stride 2 after its pool
    Stage(128, 2),    # C2: stride 4
    Stage(256, 3),    # C3: stride 8
    Stage(512, 3),    # C4: stride 16
    Stage(512, 3),    # C5: stride 32
)
# Table 1, configuration E (VGG-19): conv3-256 x4 and conv3-512 x4 x2.
VGG19_STAGES = (
    Stage(64, 2),
    Stage(128, 2),    # C2: stride 4
    Stage(256, 4),    # C3: stride 8
    Stage(512, 4),    # C4: stride 16
    Stage(512, 4),    # C5: stride 32
)
FC_UNITS = 4096  # FC-4096, FC-4096, FC-1000 (Table 1)


def _vgg(stages, model_name, include_top, weights, input_tensor, input_shape, pooling, classes,
         classifier_activation, dropout_rate):
    """Returns a VGG model decoded from ``stages`` (the paper's Table 1 column)."""
    check_common_args(weights, include_top, pooling, classes, classifier_activation, dropout_rate)
    img_input, inputs = model_input(input_shape, input_tensor, default_size=224, min_size=32,
                                    include_top=include_top, static_when_top=True)
    x = img_input
    for block, stage in enumerate(stages, start=1):
        for conv in range(1, stage.convs + 1):
            x = layers.Conv2D(stage.filters, 3, padding="same", activation="relu",
                              name=f"block{block}_conv{conv}")(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)

    if include_top:
        # The paper trains with dropout 0.5 after the first two FC layers (section 3.1);
        # keras.applications builds none (dropout_rate=0).
        x = fully_connected_head(x, ("fc1", "fc2"), FC_UNITS, dropout_rate, False, classes,
                                 classifier_activation)
    else:
        x = pool_features(x, pooling)
    return finish_model(inputs, x, model_name, weights, include_top)


def VGG16(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
          classes=1000, classifier_activation="softmax", dropout_rate=0.0):
    """Returns a VGG-16 ``keras.Model`` (Simonyan & Zisserman 2015, Table 1, configuration
    D; 138,357,544 parameters at 224x224 with 1000 classes; keras.applications.VGG16's
    convention and layer names).

    Input: ``(None, rows, cols, 3)`` float32 images preprocessed as
    ``keras.applications.vgg16.preprocess_input`` does ("caffe": RGB to BGR, minus the ImageNet
    BGR mean, no scaling). Output: ``(None, classes)`` class probabilities (softmax; logits with
    ``classifier_activation=None``); with ``include_top=False`` the block5 pool's feature map
    ``(None, rows/32, cols/32, 512)``, or ``(None, 512)`` with ``pooling``.

    Args:
      include_top: whether to include the three fully connected layers (flatten, fc1, fc2,
        predictions); they need a static input size, and fc1's parameters depend on it.
      weights: None or the path of an ``.h5`` file saved from kerasnets or keras.applications
        with the same arguments (kerasnets never downloads).
      input_tensor: optional Keras tensor to use as the model's input.
      input_shape: ``(rows, cols, channels)``, default ``(224, 224, 3)``; rows/cols >= 32.
      pooling: None, "avg" or "max" when ``include_top=False``.
      classes: number of classes.
      classifier_activation: activation of the classifier output, or None for logits.
      dropout_rate: dropout after fc1 and fc2 (the paper trains with 0.5; 0, the default, builds
        none, as keras.applications).

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    return _vgg(VGG16_STAGES, "vgg16", include_top, weights, input_tensor, input_shape, pooling,
                classes, classifier_activation, dropout_rate)


def VGG19(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
          classes=1000, classifier_activation="softmax", dropout_rate=0.0):
    """Returns a VGG-19 ``keras.Model`` (Simonyan & Zisserman 2015, Table 1, configuration
    E; 143,667,240 parameters at 224x224 with 1000 classes; keras.applications.VGG19's
    convention and layer names).

    Input: ``(None, rows, cols, 3)`` float32 images preprocessed as
    ``keras.applications.vgg16.preprocess_input`` does ("caffe": RGB to BGR, minus the ImageNet
    BGR mean, no scaling). Output: ``(None, classes)`` class probabilities (softmax; logits with
    ``classifier_activation=None``); with ``include_top=False`` the block5 pool's feature map
    ``(None, rows/32, cols/32, 512)``, or ``(None, 512)`` with ``pooling``.

    Args:
      include_top: whether to include the three fully connected layers (flatten, fc1, fc2,
        predictions); they need a static input size, and fc1's parameters depend on it.
      weights: None or the path of an ``.h5`` file saved from kerasnets or keras.applications
        with the same arguments (kerasnets never downloads).
      input_tensor: optional Keras tensor to use as the model's input.
      input_shape: ``(rows, cols, channels)``, default ``(224, 224, 3)``; rows/cols >= 32.
      pooling: None, "avg" or "max" when ``include_top=False``.
      classes: number of classes.
      classifier_activation: activation of the classifier output, or None for logits.
      dropout_rate: dropout after fc1 and fc2 (the paper trains with 0.5; 0, the default, builds
        none, as keras.applications).

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    return _vgg(VGG19_STAGES, "vgg19", include_top, weights, input_tensor, input_shape, pooling,
                classes, classifier_activation, dropout_rate)


register_model("vgg16", VGG16, family="vgg", default_size=224, min_size=32, keras_twin="VGG16")
register_model("vgg19", VGG19, family="vgg", default_size=224, min_size=32, keras_twin="VGG19")
