"""GoogLeNet, Inception v1 (Szegedy et al., 2015, "Going Deeper with Convolutions", CVPR,
arXiv:1409.4842).

The network of the paper's Table 1, 5x5 branches included, with the optional auxiliary
classifiers of its section 5. Layer names are those of the Caffe reference model
(``bvlc_googlenet``: ``inception_3a/1x1``, ``loss1/fc``, ...).

Two choices the paper leaves to us:

- Normalization. The paper has none besides local response normalization (LRN) after the stem's
  first pooling and second convolution. ``batch_norm=False`` (the default) follows the paper:
  every convolution has a bias and no BatchNorm. ``batch_norm=True`` puts BatchNorm between
  each convolution and its ReLU, with convolutions without bias (as torchvision's GoogLeNet and
  the BN-Inception paper do).
- LRN is left out in both modes. It has no weights, so parameter counts are unaffected; the
  BN-Inception paper and torchvision drop it too, and TFLite has no int8 kernel for it, which
  would keep the model from converting to full int8.

torchvision's GoogLeNet (6,624,904 parameters) differs from this one: BatchNorm after every
convolution and 3x3 convolutions where Table 1 has 5x5.
"""

import collections

from kerasnets._keras import layers
from kerasnets.layers import blocks
from kerasnets.layers.blocks import BNConfig, activation_layer
from kerasnets.models.convention import check_common_args, model_input, pool_features
from kerasnets.models.registry import register_model
from kerasnets.models.weights import finish_model

Conv = collections.namedtuple("Conv", "name filters kernel stride")
MaxPool = collections.namedtuple("MaxPool", "name")  # 3x3, stride 2, everywhere in Table 1
Inception = collections.namedtuple(
    "Inception", "name n1x1 n3x3_reduce n3x3 n5x5_reduce n5x5 pool_proj")

# Table 1 of the paper, row by row (the final average pool, dropout and linear layer are the
# head). Inception columns: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
TABLE1 = (
    Conv("conv1/7x7_s2", 64, 7, 2),
    MaxPool("pool1/3x3_s2"),
    Conv("conv2/3x3_reduce", 64, 1, 1),  # the "#3x3 reduce" column of the convolution row
    Conv("conv2/3x3", 192, 3, 1),        # C2: stride 4
    MaxPool("pool2/3x3_s2"),
    Inception("inception_3a", 64, 96, 128, 16, 32, 32),
    Inception("inception_3b", 128, 128, 192, 32, 96, 64),    # C3: stride 8
    MaxPool("pool3/3x3_s2"),
    Inception("inception_4a", 192, 96, 208, 16, 48, 64),
    Inception("inception_4b", 160, 112, 224, 24, 64, 64),
    Inception("inception_4c", 128, 128, 256, 24, 64, 64),
    Inception("inception_4d", 112, 144, 288, 32, 64, 64),
    Inception("inception_4e", 256, 160, 320, 32, 128, 128),  # C4: stride 16
    MaxPool("pool4/3x3_s2"),
    Inception("inception_5a", 256, 160, 320, 32, 128, 128),
    Inception("inception_5b", 384, 192, 384, 48, 128, 128),  # C5: stride 32
)
MAIN_DROPOUT = 0.4  # Table 1: "dropout (40%)"

# Section 5: auxiliary classifiers on top of inception (4a) and (4d): 5x5 average pool,
# stride 3; 1x1 conv with 128 filters; fully connected, 1024 units; dropout 70%; linear.
AUX_AFTER = (("inception_4a", "loss1"), ("inception_4d", "loss2"))
AUX_POOL, AUX_POOL_STRIDE = 5, 3
AUX_CONV_FILTERS = 128
AUX_FC_UNITS = 1024
AUX_DROPOUT = 0.7
# The auxiliary pool needs a map of at least 5x5 at inception (4a), stride 16: rows >= 65.
AUX_MIN_SIZE = 16 * (AUX_POOL - 1) + 1

BN = BNConfig(epsilon=1e-3, momentum=0.99)


def conv_unit(x, filters, kernel, stride, name, batch_norm_on):
    """Returns ReLU(conv(x)) named ``name`` and ``name + '/relu'``, 'same' padding; with
    ``batch_norm_on`` the conv has no bias and a BatchNorm ``name + '/bn'`` precedes the ReLU."""
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same",
                      use_bias=not batch_norm_on, name=name)(x)
    if batch_norm_on:
        x = blocks.batch_norm(x, name + "/bn", BN)
    return activation_layer("relu", name + "/relu")(x)


def inception_module(x, row, batch_norm_on):
    """Returns the concatenation of the four branches of an Inception module (paper Figure 2b):
    1x1; 1x1 reduce then 3x3; 1x1 reduce then 5x5; 3x3 max pool then 1x1 projection."""
    name = row.name
    b1 = conv_unit(x, row.n1x1, 1, 1, name + "/1x1", batch_norm_on)
    b2 = conv_unit(x, row.n3x3_reduce, 1, 1, name + "/3x3_reduce", batch_norm_on)
    b2 = conv_unit(b2, row.n3x3, 3, 1, name + "/3x3", batch_norm_on)
    b3 = conv_unit(x, row.n5x5_reduce, 1, 1, name + "/5x5_reduce", batch_norm_on)
    b3 = conv_unit(b3, row.n5x5, 5, 1, name + "/5x5", batch_norm_on)
    b4 = layers.MaxPooling2D(3, strides=1, padding="same", name=name + "/pool")(x)
    b4 = conv_unit(b4, row.pool_proj, 1, 1, name + "/pool_proj", batch_norm_on)
    return layers.Concatenate(axis=-1, name=name + "/output")([b1, b2, b3, b4])


def auxiliary_classifier(x, prefix, classes, classifier_activation, batch_norm_on):
    """Returns the output of an auxiliary classifier (paper section 5) named ``prefix/...``."""
    x = layers.AveragePooling2D(AUX_POOL, strides=AUX_POOL_STRIDE, name=prefix + "/ave_pool")(x)
    x = conv_unit(x, AUX_CONV_FILTERS, 1, 1, prefix + "/conv", batch_norm_on)
    x = layers.Flatten(name=prefix + "/flatten")(x)
    x = layers.Dense(AUX_FC_UNITS, name=prefix + "/fc")(x)
    x = activation_layer("relu", prefix + "/fc/relu")(x)
    x = layers.Dropout(AUX_DROPOUT, name=prefix + "/drop_fc")(x)
    return layers.Dense(classes, activation=classifier_activation,
                        name=prefix + "/classifier")(x)


def GoogLeNet(input_shape=None, include_top=True, weights=None, input_tensor=None, pooling=None,
              classes=1000, classifier_activation="softmax", dropout_rate=MAIN_DROPOUT,
              batch_norm=False, aux_logits=False):
    """Returns a GoogLeNet (Inception v1) ``keras.Model`` (paper Table 1), with outputs
    ``[main, aux1, aux2]`` when ``aux_logits`` is True.

    Input: ``(None, rows, cols, 3)`` float32 images preprocessed "caffe"-style (RGB to BGR, minus
    the ImageNet BGR mean, no scaling, as the Caffe reference model). Output: ``(None, classes)``
    class probabilities (softmax; logits with ``classifier_activation=None``), each auxiliary
    output the same; with ``include_top=False`` the stride-32 feature map ``(None, h, w, 1024)``,
    or ``(None, 1024)`` with ``pooling``.

    Args:
      input_shape: ``(rows, cols, channels)``, default ``(224, 224, 3)``; rows/cols >= 32
        (>= 65 with ``aux_logits``, which also needs static rows/cols).
      include_top: whether to include the classifier (global average pool, dropout, dense).
      weights: None or the path of an ``.h5`` file saved from kerasnets with the same arguments.
      input_tensor: optional Keras tensor to use as the model's input.
      pooling: None, "avg" or "max" when ``include_top=False``.
      classes: number of classes.
      classifier_activation: activation of the classifier outputs, or None for logits.
      dropout_rate: dropout before the main classifier (the paper's 40% by default).
      batch_norm: BatchNorm after every convolution (convolutions then have no bias); False
        follows the paper.
      aux_logits: add the two auxiliary classifiers of section 5 (after inception 4a and 4d),
        for training; needs ``include_top=True``.

    Raises:
      ValueError: an argument is outside what is allowed (the message names it).
    """
    check_common_args(weights, include_top, pooling, classes, classifier_activation, dropout_rate)
    for arg, value in (("batch_norm", batch_norm), ("aux_logits", aux_logits)):
        if not isinstance(value, bool):
            raise ValueError(f"`{arg}` must be True or False; received {arg}={value!r}")
    if aux_logits and not include_top:
        raise ValueError(
            "`aux_logits`=True needs include_top=True (the auxiliary classifiers are heads); "
            f"received aux_logits={aux_logits!r}, include_top={include_top!r}"
        )
    img_input, inputs = model_input(input_shape, input_tensor, default_size=224, min_size=32,
                                    include_top=include_top, static_when_top=aux_logits)
    if aux_logits and min(img_input.shape[1:3]) < AUX_MIN_SIZE:
        raise ValueError(
            f"`aux_logits`=True needs input rows and cols of at least {AUX_MIN_SIZE} (a 5x5 map "
            f"at inception 4a for the auxiliary pool); received input_shape="
            f"{tuple(img_input.shape[1:])!r}"
        )

    x = img_input
    aux_outputs = []
    aux_heads = dict(AUX_AFTER) if aux_logits else {}
    for row in TABLE1:
        if isinstance(row, Conv):
            x = conv_unit(x, row.filters, row.kernel, row.stride, row.name, batch_norm)
        elif isinstance(row, MaxPool):
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=row.name)(x)
        else:
            x = inception_module(x, row, batch_norm)
            if row.name in aux_heads:
                aux_outputs.append(auxiliary_classifier(
                    x, aux_heads[row.name], classes, classifier_activation, batch_norm))

    if include_top:
        x = layers.GlobalAveragePooling2D(name="pool5/7x7_s1")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="pool5/drop_7x7_s1")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="loss3/classifier")(x)
    else:
        x = pool_features(x, pooling)
    outputs = [x] + aux_outputs if aux_logits else x
    return finish_model(inputs, outputs, "googlenet", weights, include_top)


register_model("googlenet", GoogLeNet, family="googlenet", default_size=224, min_size=32)
