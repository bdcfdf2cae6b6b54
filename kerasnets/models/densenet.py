"""DenseNet (Huang et al., 2017, "Densely Connected Convolutional Networks", CVPR,
arXiv:1608.06993).

The ImageNet DenseNet-121/169/201/264 of the paper's Table 1, with keras.applications.DenseNet's
layer names so that its weight files load, and the CIFAR DenseNet / DenseNet-BC of section 4
(Table 2). Every layer of a dense block receives the concatenation of the feature maps of all
earlier layers and adds ``growth_rate`` (k) of its own; transition layers between blocks halve
the resolution and keep a fraction ``compression`` (theta) of the feature maps.

Like keras.applications, the ImageNet models take inputs preprocessed by
``keras.applications.densenet.preprocess_input`` ("torch" mode); ``include_preprocessing=True``
puts that normalization inside the model instead.
"""

import collections
import numbers

from kerasnets._keras import layers
from kerasnets.layers.blocks import (
    BNConfig, activation_layer, batch_norm, dense_block, mean_std_normalization, transition,
)
from kerasnets.models.convention import (
    check_common_args, check_positive_int, model_input, pool_features,
)
from kerasnets.models.registry import register_model
from kerasnets.models.weights import finish_model

# Table 1 of the paper: dense layers in dense blocks 1-4 (56x56, 28x28, 14x14, 7x7 at 224x224).
# Every ImageNet model is a DenseNet-BC with k = 32 and theta = 0.5; its stem is a 7x7 conv,
# stride 2, with 2k filters, then a 3x3 max pool, stride 2.
IMAGENET_BLOCKS = {
    121: (6, 12, 24, 16),
    169: (6, 12, 32, 32),
    201: (6, 12, 48, 32),
    264: (6, 12, 64, 48),
}
IMAGENET_GROWTH_RATE = 32
IMAGENET_COMPRESSION = 0.5
IMAGENET_STEM_STRIDE = 4

# Section 3, "Implementation Details" and Table 2 (CIFAR, 32x32 inputs): three dense blocks of
# equal size (32x32, 16x16, 8x8), a 3x3 first conv with 16 filters (2k for DenseNet-BC) and no
# initial pooling. Depth counts the convs and the classifier: L = 3n + 4 for n plain layers per
# block, L = 6n + 4 for n bottleneck layers (two convs each).
CifarConfig = collections.namedtuple("CifarConfig", "depth growth_rate bottleneck compression")
CIFAR = {
    "densenet_40_k12": CifarConfig(40, 12, False, 1.0),      # Table 2: 1.0M params
    "densenet_bc_100_k12": CifarConfig(100, 12, True, 0.5),  # 0.8M
    "densenet_bc_250_k24": CifarConfig(250, 24, True, 0.5),  # 15.3M
    "densenet_bc_190_k40": CifarConfig(190, 40, True, 0.5),  # 25.6M
}
CIFAR_NUM_BLOCKS = 3
CIFAR_PLAIN_STEM_FILTERS = 16
BC_STEM_GROWTH_MULTIPLE = 2  # "twice the growth rate" (DenseNet-BC on CIFAR, every ImageNet net)

# Per-channel mean and standard deviation of the training images, in [0, 1] units.
# ImageNet: keras.applications.densenet.preprocess_input ("torch" mode).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# CIFAR-10: the 50,000 training images.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

# keras.applications.DenseNet's BatchNorm, for its weight files.
BN = BNConfig(epsilon=1.001e-5, momentum=0.99)
# The CIFAR models follow the paper's Torch code (nn.SpatialBatchNormalization: eps 1e-5,
# momentum 0.1, i.e. Keras momentum 0.9). With Keras' 0.99 the moving statistics still hold
# most of their initial values after a short run, and inference is near chance.
CIFAR_BN = BNConfig(epsilon=1e-5, momentum=0.9)


def _check_blocks(blocks):
    """Returns ``blocks`` as a tuple after checking it is a non-empty list of positive ints."""
    ok = isinstance(blocks, (list, tuple)) and len(blocks) > 0 and all(
        isinstance(b, numbers.Integral) and not isinstance(b, bool) and b > 0 for b in blocks
    )
    if not ok:
        raise ValueError(
            "`blocks` must be a non-empty list of positive integers (the number of dense layers "
            f"in each dense block, e.g. [6, 12, 24, 16]); received blocks={blocks!r}"
        )
    return tuple(int(b) for b in blocks)


def _check_compression(compression):
    """Returns ``compression`` as a float after checking it is in ``(0, 1]``."""
    if (not isinstance(compression, numbers.Real) or isinstance(compression, bool)
            or not 0 < compression <= 1):
        raise ValueError(
            "`compression` (theta, the fraction of feature maps a transition keeps) must be a "
            f"number in (0, 1]; received compression={compression!r}"
        )
    return float(compression)


def _check_bool(name, value):
    """Returns ``value`` after checking it is True or False."""
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be True or False; received {name}={value!r}")
    return value


def _check_cifar_depth(depth, bottleneck):
    """Returns the number of dense layers per block of a CIFAR DenseNet of ``depth``."""
    convs_per_layer = 2 if bottleneck else 1
    step = CIFAR_NUM_BLOCKS * convs_per_layer
    if (not isinstance(depth, numbers.Integral) or isinstance(depth, bool)
            or depth < step + 4 or (depth - 4) % step):
        kind = "with bottleneck=True" if bottleneck else "with bottleneck=False"
        examples = "100, 190, 250" if bottleneck else "40, 100"
        raise ValueError(
            f"`depth` must be {step}n + 4 with n >= 1 {kind} (three dense blocks of n layers of "
            f"{convs_per_layer} conv(s), plus the first conv, two transitions and the "
            f"classifier), e.g. {examples}; received depth={depth!r}"
        )
    return (depth - 4) // step


def _imagenet_stem(x, filters, bn):
    """Returns ``x`` after the ImageNet stem: 7x7 conv stride 2, BN, ReLU, 3x3 max pool stride 2.

    Padded and named as keras.applications.DenseNet (explicit zero padding, 'valid' ops).
    """
    x = layers.ZeroPadding2D(((3, 3), (3, 3)), name="conv1/pad")(x)
    x = layers.Conv2D(filters, 7, strides=2, use_bias=False, name="conv1/conv")(x)
    x = batch_norm(x, "conv1/bn", bn)
    x = activation_layer("relu", "conv1/relu")(x)
    x = layers.ZeroPadding2D(((1, 1), (1, 1)), name="pool1/pad")(x)
    return layers.MaxPooling2D(3, strides=2, name="pool1")(x)


def _cifar_stem(x, filters, bn):
    """Returns ``x`` after the CIFAR stem: one 3x3 conv (its BN-ReLU opens the first layer)."""
    return layers.Conv2D(filters, 3, padding="same", use_bias=False, name="conv1/conv")(x)


def _densenet(stem, stem_stride, stem_filters, blocks, growth_rate, bottleneck, compression,
              name, bn, default_size, mean, std, include_top, weights, input_tensor,
              input_shape, pooling, classes, classifier_activation, dropout_rate,
              include_preprocessing):
    """Returns a DenseNet ``keras.Model``: ``stem``, then the dense blocks of ``blocks`` with a
    transition between consecutive blocks, then BN-ReLU and the head; ``stem_stride`` is the
    stem's downsampling and ``bn`` configures every BatchNormalization.

    Blocks are named as keras.applications.DenseNet's: dense blocks ``conv2``, ``conv3``, ...,
    transitions ``pool2``, ``pool3``, ....
    """
    # Each transition halves the resolution; the last block needs at least one pixel.
    min_size = stem_stride * 2 ** (len(blocks) - 1)
    img_input, inputs = model_input(input_shape, input_tensor, default_size=default_size,
                                    min_size=min_size, include_top=include_top,
                                    static_when_top=False)
    x = img_input
    if include_preprocessing:
        x = mean_std_normalization(x, mean, std)
    x = stem(x, stem_filters, bn)
    for i, num_layers in enumerate(blocks):
        x = dense_block(x, num_layers, growth_rate, bottleneck, f"conv{i + 2}", bn, dropout_rate)
        if i < len(blocks) - 1:
            x = transition(x, compression, f"pool{i + 2}", bn, dropout_rate)
    x = batch_norm(x, "bn", bn)
    x = activation_layer("relu", "relu")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = pool_features(x, pooling)
    return finish_model(inputs, x, name, weights, include_top)


def DenseNet(blocks, growth_rate=IMAGENET_GROWTH_RATE, bottleneck=True,
             compression=IMAGENET_COMPRESSION, include_top=True, weights=None, input_tensor=None,
             input_shape=None, pooling=None, classes=1000, classifier_activation="softmax",
             dropout_rate=0.0, include_preprocessing=False):
    """Returns an ImageNet-style DenseNet ``keras.Model`` with the dense blocks of ``blocks``
    (Huang et al. 2017, Table 1; keras.applications.densenet.DenseNet's convention, plus the
    paper's k, B and C).

    Input: ``(None, rows, cols, 3)`` float32 images preprocessed as
    ``keras.applications.densenet.preprocess_input`` does ("torch": ``(x / 255 - mean) / std``
    with the ImageNet mean and std), or [0, 255] pixels with ``include_preprocessing=True``.
    Output: ``(None, classes)`` class probabilities (softmax; logits with
    ``classifier_activation=None``); with ``include_top=False`` the last dense block's feature
    map ``(None, h, w, channels)``, or ``(None, channels)`` with ``pooling``.

    Args:
      blocks: dense layers per dense block, e.g. ``[6, 12, 24, 16]`` (DenseNet-121); a
        transition layer separates consecutive blocks.
      growth_rate: k, the feature maps each dense layer adds (positive integer); the stem conv
        has 2k filters.
      bottleneck: whether dense layers have the 1x1 bottleneck conv to 4k maps (DenseNet-B).
      compression: theta in (0, 1], the fraction of feature maps a transition keeps
        (DenseNet-C when < 1).
      include_top: whether to include the classifier (global average pool, dense).
      weights: None or the path of an ``.h5`` file saved from kerasnets or
        keras.applications.DenseNet* with the same arguments (e.g. the official ImageNet file).
      input_tensor: optional Keras tensor to use as the model's input.
      input_shape: ``(rows, cols, channels)``, default ``(224, 224, 3)``; rows/cols >= 32 for
        four blocks.
      pooling: None, "avg" or "max" when ``include_top=False``.
      classes: number of classes.
      classifier_activation: activation of the classifier output, or None for logits.
      dropout_rate: dropout after each conv of the dense and transition layers (the paper's
        setting without data augmentation); 0 (default, as keras.applications) for none.
      include_preprocessing: normalize [0, 255] inputs inside the model as
        ``densenet.preprocess_input`` does; False (as keras.applications) expects inputs
        already preprocessed.

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    blocks = _check_blocks(blocks)
    name = "densenet"
    for depth, table_blocks in IMAGENET_BLOCKS.items():
        if (blocks, growth_rate, bottleneck, compression) == (
                table_blocks, IMAGENET_GROWTH_RATE, True, IMAGENET_COMPRESSION):
            name = f"densenet{depth}"
    return _imagenet_densenet(blocks, growth_rate, bottleneck, compression, name, include_top,
                              weights, input_tensor, input_shape, pooling, classes,
                              classifier_activation, dropout_rate, include_preprocessing)


def _imagenet_densenet(blocks, growth_rate, bottleneck, compression, name, include_top, weights,
                       input_tensor, input_shape, pooling, classes, classifier_activation,
                       dropout_rate, include_preprocessing):
    """Returns an ImageNet-stem DenseNet after validating the arguments."""
    check_common_args(weights, include_top, pooling, classes, classifier_activation, dropout_rate)
    growth_rate = check_positive_int("growth_rate", growth_rate)
    bottleneck = _check_bool("bottleneck", bottleneck)
    compression = _check_compression(compression)
    include_preprocessing = _check_bool("include_preprocessing", include_preprocessing)
    return _densenet(_imagenet_stem, IMAGENET_STEM_STRIDE, BC_STEM_GROWTH_MULTIPLE * growth_rate,
                     blocks, growth_rate, bottleneck, compression, name, BN, 224, IMAGENET_MEAN,
                     IMAGENET_STD, include_top, weights, input_tensor, input_shape, pooling,
                     classes, classifier_activation, dropout_rate, include_preprocessing)


def DenseNet121(include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", dropout_rate=0.0,
                include_preprocessing=False):
    """Returns a DenseNet-121 ``keras.Model`` (Huang et al. 2017, Table 1: dense blocks of
    6, 12, 24, 16 layers, k = 32, theta = 0.5, bottleneck layers;
    keras.applications.DenseNet121's convention and layer names).

    Input: ``(None, rows, cols, 3)`` float32 images preprocessed as
    ``keras.applications.densenet.preprocess_input`` does ("torch": ``(x / 255 - mean) / std``
    with the ImageNet mean and std), or [0, 255] pixels with ``include_preprocessing=True``.
    Output: ``(None, classes)`` class probabilities (softmax; logits with
    ``classifier_activation=None``); with ``include_top=False`` the stride-32 feature map
    ``(None, h, w, channels)``, or ``(None, channels)`` with ``pooling``.

    Args:
      include_top: whether to include the classifier (global average pool, dense).
      weights: None or the path of an ``.h5`` file saved from kerasnets or
        keras.applications.DenseNet121 with the same arguments (e.g. the official
        ImageNet file, full or no-top).
      input_tensor: optional Keras tensor to use as the model's input.
      input_shape: ``(rows, cols, channels)``, default ``(224, 224, 3)``; rows/cols >= 32.
      pooling: None, "avg" or "max" when ``include_top=False``.
      classes: number of classes.
      classifier_activation: activation of the classifier output, or None for logits.
      dropout_rate: dropout after each conv of the dense and transition layers; 0 (default, as
        keras.applications) for none.
      include_preprocessing: normalize [0, 255] inputs inside the model as
        ``densenet.preprocess_input`` does.

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    return _imagenet_densenet(IMAGENET_BLOCKS[121], IMAGENET_GROWTH_RATE, True,
                              IMAGENET_COMPRESSION, "densenet121", include_top, weights,
                              input_tensor, input_shape, pooling, classes, classifier_activation,
                              dropout_rate, include_preprocessing)


def DenseNet169(include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", dropout_rate=0.0,
                include_preprocessing=False):
    """Returns a DenseNet-169 ``keras.Model`` (Huang et al. 2017, Table 1: dense blocks of
    6, 12, 32, 32 layers, k = 32, theta = 0.5, bottleneck layers;
    keras.applications.DenseNet169's convention and layer names).

    Input: ``(None, rows, cols, 3)`` float32 images preprocessed as
    ``keras.applications.densenet.preprocess_input`` does ("torch": ``(x / 255 - mean) / std``
    with the ImageNet mean and std), or [0, 255] pixels with ``include_preprocessing=True``.
    Output: ``(None, classes)`` class probabilities (softmax; logits with
    ``classifier_activation=None``); with ``include_top=False`` the stride-32 feature map
    ``(None, h, w, channels)``, or ``(None, channels)`` with ``pooling``.

    Args:
      include_top: whether to include the classifier (global average pool, dense).
      weights: None or the path of an ``.h5`` file saved from kerasnets or
        keras.applications.DenseNet169 with the same arguments (e.g. the official
        ImageNet file, full or no-top).
      input_tensor: optional Keras tensor to use as the model's input.
      input_shape: ``(rows, cols, channels)``, default ``(224, 224, 3)``; rows/cols >= 32.
      pooling: None, "avg" or "max" when ``include_top=False``.
      classes: number of classes.
      classifier_activation: activation of the classifier output, or None for logits.
      dropout_rate: dropout after each conv of the dense and transition layers; 0 (default, as
        keras.applications) for none.
      include_preprocessing: normalize [0, 255] inputs inside the model as
        ``densenet.preprocess_input`` does.

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    return _imagenet_densenet(IMAGENET_BLOCKS[169], IMAGENET_GROWTH_RATE, True,
                              IMAGENET_COMPRESSION, "densenet169", include_top, weights,
                              input_tensor, input_shape, pooling, classes, classifier_activation,
                              dropout_rate, include_preprocessing)


def DenseNet201(include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", dropout_rate=0.0,
                include_preprocessing=False):
    """Returns a DenseNet-201 ``keras.Model`` (Huang et al. 2017, Table 1: dense blocks of
    6, 12, 48, 32 layers, k = 32, theta = 0.5, bottleneck layers;
    keras.applications.DenseNet201's convention and layer names).

    Input: ``(None, rows, cols, 3)`` float32 images preprocessed as
    ``keras.applications.densenet.preprocess_input`` does ("torch": ``(x / 255 - mean) / std``
    with the ImageNet mean and std), or [0, 255] pixels with ``include_preprocessing=True``.
    Output: ``(None, classes)`` class probabilities (softmax; logits with
    ``classifier_activation=None``); with ``include_top=False`` the stride-32 feature map
    ``(None, h, w, channels)``, or ``(None, channels)`` with ``pooling``.

    Args:
      include_top: whether to include the classifier (global average pool, dense).
      weights: None or the path of an ``.h5`` file saved from kerasnets or
        keras.applications.DenseNet201 with the same arguments (e.g. the official
        ImageNet file, full or no-top).
      input_tensor: optional Keras tensor to use as the model's input.
      input_shape: ``(rows, cols, channels)``, default ``(224, 224, 3)``; rows/cols >= 32.
      pooling: None, "avg" or "max" when ``include_top=False``.
      classes: number of classes.
      classifier_activation: activation of the classifier output, or None for logits.
      dropout_rate: dropout after each conv of the dense and transition layers; 0 (default, as
        keras.applications) for none.
      include_preprocessing: normalize [0, 255] inputs inside the model as
        ``densenet.preprocess_input`` does.

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    return _imagenet_densenet(IMAGENET_BLOCKS[201], IMAGENET_GROWTH_RATE, True,
                              IMAGENET_COMPRESSION, "densenet201", include_top, weights,
                              input_tensor, input_shape, pooling, classes, classifier_activation,
                              dropout_rate, include_preprocessing)


def DenseNet264(include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", dropout_rate=0.0,
                include_preprocessing=False):
    """Returns a DenseNet-264 ``keras.Model`` (Huang et al. 2017, Table 1: dense blocks of
    6, 12, 64, 48 layers, k = 32, theta = 0.5, bottleneck layers;
    keras.applications.densenet.DenseNet([6, 12, 64, 48])'s layer names).

    Input: ``(None, rows, cols, 3)`` float32 images preprocessed as
    ``keras.applications.densenet.preprocess_input`` does ("torch": ``(x / 255 - mean) / std``
    with the ImageNet mean and std), or [0, 255] pixels with ``include_preprocessing=True``.
    Output: ``(None, classes)`` class probabilities (softmax; logits with
    ``classifier_activation=None``); with ``include_top=False`` the stride-32 feature map
    ``(None, h, w, channels)``, or ``(None, channels)`` with ``pooling``.

    Args:
      include_top: whether to include the classifier (global average pool, dense).
      weights: None or the path of an ``.h5`` file saved from kerasnets or
        keras.applications.densenet.DenseNet([6, 12, 64, 48]) with the same
        arguments.
      input_tensor: optional Keras tensor to use as the model's input.
      input_shape: ``(rows, cols, channels)``, default ``(224, 224, 3)``; rows/cols >= 32.
      pooling: None, "avg" or "max" when ``include_top=False``.
      classes: number of classes.
      classifier_activation: activation of the classifier output, or None for logits.
      dropout_rate: dropout after each conv of the dense and transition layers; 0 (default, as
        keras.applications) for none.
      include_preprocessing: normalize [0, 255] inputs inside the model as
        ``densenet.preprocess_input`` does.

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    return _imagenet_densenet(IMAGENET_BLOCKS[264], IMAGENET_GROWTH_RATE, True,
                              IMAGENET_COMPRESSION, "densenet264", include_top, weights,
                              input_tensor, input_shape, pooling, classes, classifier_activation,
                              dropout_rate, include_preprocessing)


def DenseNetCifar(depth=100, growth_rate=12, bottleneck=True, compression=0.5, include_top=True,
                  weights=None, input_tensor=None, input_shape=None, pooling=None, classes=10,
                  classifier_activation="softmax", dropout_rate=0.0, include_preprocessing=False):
    """Returns a CIFAR DenseNet or DenseNet-BC ``keras.Model`` (paper section 4, Table 2).

    A 3x3 conv with 16 filters (2k for DenseNet-BC, i.e. bottleneck and compression < 1), no
    initial pooling, three dense blocks of ``(depth - 4) / 6`` bottleneck layers or
    ``(depth - 4) / 3`` plain layers, transitions (BN-ReLU-1x1 conv-2x2 average pool) between
    them, and BN-ReLU-global average pool-dense.

    Input: ``(None, rows, cols, 3)`` float32 images normalized with the CIFAR-10 mean and std
    (``(x / 255 - CIFAR10_MEAN) / CIFAR10_STD``), or [0, 255] pixels with
    ``include_preprocessing=True``. Output: ``(None, classes)`` class probabilities (softmax;
    logits with ``classifier_activation=None``); with ``include_top=False`` the stride-4 feature
    map ``(None, h, w, channels)``, or ``(None, channels)`` with ``pooling``.

    Args:
      depth: L, the number of convs plus the classifier: 6n + 4 with bottleneck, else 3n + 4.
      growth_rate: k (positive integer).
      bottleneck: whether dense layers have the 1x1 bottleneck conv to 4k maps (DenseNet-B).
      compression: theta in (0, 1] (0.5 for DenseNet-BC, 1 for the plain DenseNet).
      include_top: whether to include the classifier.
      weights: None or the path of an ``.h5`` file saved from a kerasnets model of the same
        arguments.
      input_tensor: optional Keras tensor to use as the model's input.
      input_shape: ``(rows, cols, channels)``, default ``(32, 32, 3)``; rows/cols >= 4.
      pooling: None, "avg" or "max" when ``include_top=False``.
      classes: number of classes (10 for CIFAR-10).
      classifier_activation: activation of the classifier output, or None for logits.
      dropout_rate: dropout after each conv but the first (the paper uses 0.2 on C10/C100
        without data augmentation); 0 for none.
      include_preprocessing: normalize [0, 255] inputs inside the model with the CIFAR-10
        per-channel mean and standard deviation (``CIFAR10_MEAN``, ``CIFAR10_STD``).

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    check_common_args(weights, include_top, pooling, classes, classifier_activation, dropout_rate)
    bottleneck = _check_bool("bottleneck", bottleneck)
    per_block = _check_cifar_depth(depth, bottleneck)
    growth_rate = check_positive_int("growth_rate", growth_rate)
    compression = _check_compression(compression)
    include_preprocessing = _check_bool("include_preprocessing", include_preprocessing)
    is_bc = bottleneck and compression < 1
    stem_filters = BC_STEM_GROWTH_MULTIPLE * growth_rate if is_bc else CIFAR_PLAIN_STEM_FILTERS
    name = f"densenet_{'bc_' if is_bc else ''}{depth}_k{growth_rate}"
    return _densenet(_cifar_stem, 1, stem_filters, (per_block,) * CIFAR_NUM_BLOCKS, growth_rate,
                     bottleneck, compression, name, CIFAR_BN, 32, CIFAR10_MEAN, CIFAR10_STD,
                     include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation, dropout_rate, include_preprocessing)


register_model("densenet121", DenseNet121, family="densenet", default_size=224, min_size=32,
               keras_twin="DenseNet121")
register_model("densenet169", DenseNet169, family="densenet", default_size=224, min_size=32,
               keras_twin="DenseNet169")
register_model("densenet201", DenseNet201, family="densenet", default_size=224, min_size=32,
               keras_twin="DenseNet201")
# keras.applications has no DenseNet264 builder; its twin is densenet.DenseNet([6, 12, 64, 48]).
register_model("densenet264", DenseNet264, family="densenet", default_size=224, min_size=32)
for _name, _config in CIFAR.items():
    register_model(_name, DenseNetCifar, family="densenet_cifar", default_size=32,
                   min_size=2 ** (CIFAR_NUM_BLOCKS - 1), **_config._asdict())
