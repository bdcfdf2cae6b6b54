"""ResNet-50/101 and ResNeXt-50 32x4d against their papers, keras.applications and torchvision.

Parameter counts, weight import and identical outputs for ResNet50/101 against
keras.applications are in test_registry.py (keras twins); stochastic depth in
test_stochastic_depth.py.
"""

import numpy as np
import pytest

import kerasnets
from kerasnets._keras import layers

TORCHVISION_RESNEXT50_PARAMS = 25_028_904  # torchvision resnext50_32x4d, REFERENCE.md


def trainable_count(model):
    """Returns the number of trainable weights (torchvision's count: no BatchNorm statistics)."""
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_resnext50_params_equal_torchvision():
    model = kerasnets.ResNeXt50_32x4d(input_shape=(32, 32, 3))
    # torchvision counts no BatchNorm moving statistics; with them (Keras' count) it is 0.3%
    # more, within the 1% the issue allows.
    assert trainable_count(model) == TORCHVISION_RESNEXT50_PARAMS
    assert abs(model.count_params() / TORCHVISION_RESNEXT50_PARAMS - 1) < 0.01


@pytest.mark.parametrize("builder,blocks", [
    # Table 1 of the ResNet paper: [3, 4, 6, 3] and [3, 4, 23, 3] bottleneck blocks.
    (kerasnets.ResNet50, 16), (kerasnets.ResNet101, 33), (kerasnets.ResNeXt50_32x4d, 16),
])
def test_one_shortcut_addition_per_bottleneck_block(builder, blocks):
    model = builder(input_shape=(32, 32, 3), include_top=False)
    adds = [lyr for lyr in model.layers if isinstance(lyr, layers.Add)]
    assert len(adds) == blocks
    projections = [lyr for lyr in model.layers if lyr.name.endswith("_0_conv")]
    assert len(projections) == 4  # the first block of each stage changes the channels
    assert model.output_shape == (None, 1, 1, 2048)


def test_resnext_3x3_is_grouped_with_cardinality_32_and_takes_the_stride():
    model = kerasnets.ResNeXt50_32x4d(input_shape=(64, 64, 3), include_top=False)
    grouped = [lyr for lyr in model.layers if lyr.name.endswith("_2_conv")]
    assert len(grouped) == 16
    for lyr in grouped:
        width = lyr.filters
        assert lyr.groups == 32
        assert lyr.kernel.shape == (3, 3, width // 32, width)  # 4 channels per group at conv2
    assert model.get_layer("conv2_block1_2_conv").filters == 128
    for stage in ("conv3", "conv4", "conv5"):
        assert model.get_layer(f"{stage}_block1_2_conv").strides == (2, 2)
        assert model.get_layer(f"{stage}_block1_1_conv").strides == (1, 1)
    assert not any(getattr(lyr, "use_bias", False) for lyr in model.layers
                   if isinstance(lyr, layers.Conv2D))


def test_resnet_keeps_keras_stride_in_the_first_1x1():
    model = kerasnets.ResNet50(input_shape=(64, 64, 3), include_top=False)
    assert model.get_layer("conv3_block1_1_conv").strides == (2, 2)
    assert model.get_layer("conv3_block1_2_conv").strides == (1, 1)


def test_weights_round_trip_by_name(tmp_path, real_images):
    model = kerasnets.ResNeXt50_32x4d(input_shape=(32, 32, 3), classes=10)
    path = tmp_path / "resnext.h5"
    model.save_weights(str(path))
    loaded = kerasnets.ResNeXt50_32x4d(input_shape=(32, 32, 3), classes=10, weights=str(path))
    x = real_images[:4] / 127.5 - 1.0
    np.testing.assert_array_equal(loaded(x, training=False).numpy(),
                                  model(x, training=False).numpy())
    with pytest.raises(ValueError, match="classes: the classifier 'predictions' has"):
        kerasnets.ResNeXt50_32x4d(input_shape=(32, 32, 3), classes=7, weights=str(path))


@pytest.mark.parametrize("kwargs,pattern", [
    ({"drop_path_rate": 1.0}, "`drop_path_rate` must be a number in \\[0, 1\\); received "
                              "drop_path_rate=1.0"),
    ({"input_shape": (16, 16, 3)}, "at least 32"),
    ({"pooling": "sum"}, "`pooling` must be one of"),
    ({"weights": "imagenet"}, "never downloads"),
    ({"classes": 2.5}, "`classes` must be a positive integer"),
])
@pytest.mark.parametrize("builder", [kerasnets.ResNet50, kerasnets.ResNeXt50_32x4d])
def test_bad_arguments(builder, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        builder(**kwargs)
