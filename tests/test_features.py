"""Feature extraction (``create_model(name, features_only=True)``) for every registered model."""

import math

import numpy as np
import pytest

import kerasnets
from kerasnets._keras import layers
from kerasnets.models.registry import get_entry

ALL = kerasnets.list_models()
# Multi-exit models carry their classifiers inside the network: no include_top, no features_only.
MULTI_EXIT = [n for n in ALL if get_entry(n).family == "early_exit"]
BACKBONES = [n for n in ALL if n not in MULTI_EXIT]
# The CIFAR DenseNets have no stem downsampling: three dense blocks at strides 1, 2, 4
# (paper section 3, "Implementation Details").
CIFAR_FAMILIES = ("densenet_cifar",)


def feature_size(name):
    """Returns a test input size: 128, or the model's smallest input rounded up to 32."""
    return max(128, 32 * math.ceil(get_entry(name).min_size / 32))


def chosen_layers(model):
    """Returns the names of the layers whose outputs a feature model returns."""
    return [t.node.layer.name for t in model.outputs]


@pytest.mark.slow
@pytest.mark.parametrize("name", BACKBONES)
def test_feature_maps_of_every_model_are_at_strides_4_8_16_32(name):
    size = feature_size(name)
    strides = (2, 4) if get_entry(name).family in CIFAR_FAMILIES else (4, 8, 16, 32)
    model = kerasnets.create_model(name, features_only=True, input_shape=(size, size, 3),
                                   out_strides=strides)
    assert len(model.outputs) == len(strides)
    for shape, stride in zip(model.output_shape, strides):
        # Exactly size/stride, except one row less after 'valid' convolutions (Xception), two
        # after ZFNet's unpadded 5x5 stride-2 conv2 (Zeiler & Fergus Fig. 3: 55 -> 26).
        slack = 2 if name == "zfnet" else 1
        assert size // stride - slack <= shape[1] <= size // stride, (shape, stride)
        assert shape[1] == shape[2]


@pytest.mark.parametrize("name,expected", [
    # keras.io's RetinaNet example takes C3-C5 of keras.applications.ResNet50 from these layers.
    ("resnet50", ["conv2_block3_out", "conv3_block4_out", "conv4_block6_out",
                  "conv5_block3_out"]),
    # TensorFlow's image segmentation tutorial takes MobileNetV2's skips at strides 2-16 from
    # the expansions of the next downsampling block.
    ("mobilenet_v2", ["block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu",
                      "block_13_expand_relu", "out_relu"]),
    # timm's Xception features: the outputs of blocks 2, 3 and 12 (the end of the middle flow)
    # and the last activation.
    ("xception", ["block2_add", "block3_add", "block12_add", "block14_sepconv2_act"]),
    # The stem's last conv and the last Inception module of each resolution (Table 1).
    ("googlenet", ["conv2/3x3/relu", "inception_3b/output", "inception_4e/output",
                   "inception_5b/output"]),
    # ResNeXt downsamples in a block's 3x3: the 1x1 before it is not a stage end.
    ("resnext50_32x4d", ["conv2_block3_out", "conv3_block4_out", "conv4_block6_out",
                         "conv5_block3_out"]),
])
def test_feature_maps_are_the_ends_of_the_stages(name, expected):
    strides = (2, 4, 8, 16, 32) if len(expected) == 5 else (4, 8, 16, 32)
    model = kerasnets.create_model(name, features_only=True, input_shape=(128, 128, 3),
                                   out_strides=strides)
    assert chosen_layers(model) == expected


def test_out_strides_choose_and_order_the_maps():
    model = kerasnets.create_model("mobilenet_v3_small", features_only=True,
                                   input_shape=(64, 64, 3), out_strides=(32, 8))
    assert [shape[1] for shape in model.output_shape] == [2, 8]


def test_dynamic_input_size(real_images):
    # MobileNetV3's default input is (None, None, 3): the maps are located on a model of the
    # default size and taken by name.
    model = kerasnets.create_model("mobilenet_v3_small", features_only=True)
    assert all(shape[1:3] == (None, None) for shape in model.output_shape)
    maps = model(layers.Resizing(96, 96)(real_images[:2]), training=False)
    assert [m.shape[1] for m in maps] == [24, 12, 6, 3]


def test_weights_load_and_the_last_map_is_the_backbone_output(tmp_path, real_images):
    backbone = kerasnets.create_model("resnet50", include_top=False, input_shape=(64, 64, 3))
    path = tmp_path / "backbone.h5"
    backbone.save_weights(str(path))
    model = kerasnets.create_model("resnet50", features_only=True, input_shape=(64, 64, 3),
                                   weights=str(path))
    x = layers.Resizing(64, 64)(real_images[:2] / 127.5 - 1.0)
    np.testing.assert_array_equal(model(x, training=False)[-1].numpy(),
                                  backbone(x, training=False).numpy())


@pytest.mark.parametrize("kwargs,pattern", [
    ({"features_only": True, "out_strides": (64,)},
     r"`out_strides` must be strides that model 'mobilenet_v3_small' has; received "
     r"out_strides=\(64,\).*stride 64\. Allowed strides: \(2, 4, 8, 16, 32\)"),
    ({"features_only": True, "out_strides": (8, 8)}, "distinct positive integers"),
    ({"features_only": True, "out_strides": ()}, "non-empty tuple"),
    ({"features_only": True, "out_strides": 4}, "received out_strides=4"),
    ({"features_only": True, "include_top": True}, "`include_top` must be False"),
    ({"features_only": True, "pooling": "avg"}, "`pooling` must be None"),
    ({"features_only": "yes"}, "`features_only` must be True or False"),
    ({"out_strides": (8, 16)}, "with features_only=False"),
])
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        kerasnets.create_model("mobilenet_v3_small", input_shape=(64, 64, 3), **kwargs)


@pytest.mark.parametrize("name", MULTI_EXIT)
def test_multi_exit_models_refuse_features_only(name):
    with pytest.raises(ValueError, match="needs a backbone with an `include_top` argument"):
        kerasnets.create_model(name, features_only=True)
