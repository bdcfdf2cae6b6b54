"""Xception (Chollet, 2017, "Xception: Deep Learning with Depthwise Separable Convolutions",
CVPR, arXiv:1610.02357).

A linear stack of depthwise separable convolutions with residual connections: entry flow,
middle flow (8 repeats), exit flow, as the paper's Figure 5. Every separable conv is followed
by BatchNorm (section 3: "all Convolution and SeparableConvolution layers are followed by batch
normalization"). Layer names are keras.applications.Xception's, so its weight files load.

keras.applications leaves the four 1x1 projection shortcuts (and their BatchNorms) unnamed, so
their names in a keras weight file depend on the Keras session that saved it (``conv2d``,
``conv2d_1``, ... or ``conv2d_5``, ...). kerasnets names them ``block{n}_shortcut`` and
``block{n}_shortcut_bn``; when a weights file lacks those names, each is matched to the one
unnamed layer of the file with its weight shapes (the four shortcuts all differ in shape).
"""

import collections
import contextlib

from kerasnets._keras import layers
from kerasnets.layers.blocks import (
    BNConfig, activation_layer, batch_norm, drop_path_rates, residual_add,
)
from kerasnets.models.convention import (
    check_common_args, check_rate, dense_classifier, model_input, pool_features,
)
from kerasnets.models.registry import register_model
from kerasnets.models.weights import _file_layers, finish_model, load_weights

# Figure 5 of the paper. Entry flow stem: two 3x3 convs ('valid' padding, 32 then 64 filters,
# the first with stride 2).
STEM = ((32, 2), (64, 1))
# Residual blocks: the filters of their ReLU-SeparableConv 3x3-BN units, and whether the block
# ends with a 3x3 max pool, stride 2 (its shortcut then is a 1x1 conv, stride 2).
Block = collections.namedtuple("Block", "filters downsample")
BLOCKS = (
    Block((128, 128), True),          # block2, entry flow; C2: stride 4
    Block((256, 256), True),          # block3;             C3: stride 8
    Block((728, 728), True),          # block4;             C4: stride 16
    *[Block((728, 728, 728), False)] * 8,  # block5-12, middle flow
    Block((728, 1024), True),         # block13, exit flow; C5: stride 32
)
# Exit flow after the last residual block: SeparableConv-BN-ReLU units, no residual.
EXIT_FILTERS = (1536, 2048)
FIRST_BLOCK = 2  # keras.applications numbers the stem "block1"

BN = BNConfig(epsilon=1e-3, momentum=0.99)
MIN_SIZE = 71  # keras.applications.Xception's smallest input


def _separable_conv_bn(x, filters, name):
    """Returns BN(SeparableConv 3x3(x)), 'same' padding, named ``name`` and ``name + '_bn'``."""
    x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
    return batch_norm(x, name + "_bn", BN)


def residual_block(x, block, number, drop_path_rate):
    """Returns the output of Xception residual block ``number`` (keras.applications' names:
    ``block{n}_sepconv{k}_act``, ``block{n}_sepconv{k}``, ``block{n}_sepconv{k}_bn``,
    ``block{n}_pool``)."""
    prefix = f"block{number}"
    shortcut = x
    if block.downsample:
        shortcut = layers.Conv2D(block.filters[-1], 1, strides=2, padding="same",
                                 use_bias=False, name=prefix + "_shortcut")(x)
        shortcut = batch_norm(shortcut, prefix + "_shortcut_bn", BN)
    for k, filters in enumerate(block.filters, start=1):
        # The first block follows the stem's ReLU, so it starts directly with a separable conv.
        if not (number == FIRST_BLOCK and k == 1):
            x = activation_layer("relu", f"{prefix}_sepconv{k}_act")(x)
        x = _separable_conv_bn(x, filters, f"{prefix}_sepconv{k}")
    if block.downsample:
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=prefix + "_pool")(x)
    return residual_add(shortcut, x, drop_path_rate, prefix + "_drop_path", prefix + "_add")


def Xception(input_shape=None, include_top=True, weights=None, input_tensor=None, pooling=None,
             classes=1000, classifier_activation="softmax", dropout_rate=0.0,
             drop_path_rate=0.0):
    """Returns an Xception ``keras.Model`` (Chollet 2017, Figure 5; keras.applications.Xception's
    layers and convention).

    Input: ``(None, rows, cols, 3)`` float32 images in [-1, 1] (``x / 127.5 - 1``,
    keras.applications' "tf" preprocessing). Output: ``(None, classes)`` class probabilities
    (softmax; logits with ``classifier_activation=None``); with ``include_top=False`` the
    stride-32 feature map ``(None, h, w, 2048)``, or ``(None, 2048)`` with ``pooling``.

    Args:
      input_shape: ``(rows, cols, channels)``, default ``(299, 299, 3)``; rows/cols >= 71.
      include_top: whether to include the classifier (global average pool, dense).
      weights: None or the path of an ``.h5`` file saved from kerasnets or
        keras.applications.Xception with the same arguments.
      input_tensor: optional Keras tensor to use as the model's input.
      pooling: None, "avg" or "max" when ``include_top=False``.
      classes: number of classes.
      classifier_activation: activation of the classifier output, or None for logits.
      dropout_rate: dropout before the classifier (0 = none, as keras.applications; the paper
        used 0.5 on ImageNet).
      drop_path_rate: stochastic depth rate of the last residual block (block13), rising
        linearly from 0 at block2; identity at inference. 0 disables it.

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    check_common_args(weights, include_top, pooling, classes, classifier_activation, dropout_rate)
    drop_path_rate = check_rate("drop_path_rate", drop_path_rate)
    img_input, inputs = model_input(input_shape, input_tensor, default_size=299,
                                    min_size=MIN_SIZE, include_top=include_top,
                                    static_when_top=False)

    x = img_input
    for k, (filters, strides) in enumerate(STEM, start=1):
        x = layers.Conv2D(filters, 3, strides=strides, use_bias=False, name=f"block1_conv{k}")(x)
        x = batch_norm(x, f"block1_conv{k}_bn", BN)
        x = activation_layer("relu", f"block1_conv{k}_act")(x)
    rates = drop_path_rates(drop_path_rate, len(BLOCKS))
    for i, block in enumerate(BLOCKS):
        x = residual_block(x, block, FIRST_BLOCK + i, rates[i])
    exit_block = f"block{FIRST_BLOCK + len(BLOCKS)}"
    for k, filters in enumerate(EXIT_FILTERS, start=1):
        x = _separable_conv_bn(x, filters, f"{exit_block}_sepconv{k}")
        x = activation_layer("relu", f"{exit_block}_sepconv{k}_act")(x)

    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = dense_classifier(x, classes, dropout_rate, classifier_activation)
    else:
        x = pool_features(x, pooling)
    model = finish_model(inputs, x, "xception", None, include_top)
    if weights is not None:
        with _shortcut_names_of(model, weights):
            load_weights(model, weights, include_top)
    return model


def _shortcut_names(model, path):
    """Returns ``{our shortcut layer: name in the file}`` for the shortcut layers whose names
    are not in the weights file at ``path``, each matched by its weight shapes to the one file
    layer that no layer of ``model`` is named after."""
    in_file = _file_layers(path)
    ours = {layer.name for layer in model.layers}
    unnamed = {name: shapes for name, shapes in in_file.items() if name not in ours}
    matches = {}
    for layer in model.layers:
        if "_shortcut" not in layer.name or layer.name in in_file:
            continue
        shapes = [tuple(w.shape) for w in layer.weights]
        candidates = [name for name, theirs in unnamed.items() if theirs == shapes]
        if len(candidates) == 1:
            matches[layer] = candidates[0]
    return matches


@contextlib.contextmanager
def _shortcut_names_of(model, path):
    """Gives the shortcut layers of ``model`` their names in the weights file at ``path`` while
    the context lasts, so that the file loads by name (with ``kerasnets.models.weights``' checks)."""
    matches = _shortcut_names(model, path)
    renamed = {layer: layer.name for layer in matches}
    try:
        for layer, name in matches.items():
            layer._name = name
        yield
    finally:
        for layer, name in renamed.items():
            layer._name = name


register_model("xception", Xception, family="xception", default_size=299, min_size=MIN_SIZE,
               keras_twin="Xception")
