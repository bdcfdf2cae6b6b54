"""Architecture properties of the MobileNet builders that the papers define (stochastic depth:
test_stochastic_depth.py)."""

import numpy as np
import pytest

import kerasnets
from kerasnets._keras import layers

V2_V3 = ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]


def consumers(model, layer):
    """Returns the layers that take ``layer``'s output."""
    return [node.outbound_layer for node in layer.outbound_nodes
            if node.outbound_layer in model.layers]


@pytest.mark.parametrize("name", V2_V3)
def test_linear_bottleneck_has_no_activation_after_projection(name):
    model = kerasnets.create_model(name, input_shape=(64, 64, 3))
    projections = [lyr for lyr in model.layers if lyr.name.endswith(("project_BN", "project/BatchNorm"))]
    assert projections
    for bn in projections:
        for nxt in consumers(model, bn):
            # Sandler et al. 2018, sec. 3.2: the projection is linear; it feeds the residual Add
            # or the next block's convolution, never a non-linearity.
            assert isinstance(nxt, (layers.Add, layers.Conv2D)), (bn.name, nxt.name)


@pytest.mark.parametrize("name,residuals", [
    # Blocks with stride 1 and equal input/output channels, counted from the papers' tables:
    # V2 Table 2: n-1 repeats per stage (1+2+3+2+2) = 10; V3-Large Table 1: 1+1+2+3+1+2 = 10;
    # V3-Small Table 2: 1+2+1+2 = 6.
    ("mobilenet_v2", 10), ("mobilenet_v3_large", 10), ("mobilenet_v3_small", 6),
])
def test_inverted_residual_shortcuts_follow_the_paper(name, residuals):
    model = kerasnets.create_model(name, input_shape=(64, 64, 3))
    adds = [lyr for lyr in model.layers if isinstance(lyr, layers.Add)]
    assert len(adds) == residuals
    for add in adds:
        a, b = (t.shape for t in add.input)
        assert a == b


@pytest.mark.parametrize("name,stride_steps", [
    ("mobilenet_v1", 5), ("mobilenet_v2", 5), ("mobilenet_v3_large", 5), ("mobilenet_v3_small", 5),
])
def test_output_stride_is_32(name, stride_steps):
    model = kerasnets.create_model(name, input_shape=(224, 224, 3), include_top=False)
    assert model.output_shape[1:3] == (224 // 2 ** stride_steps,) * 2


def test_mobilenet_alias_and_depth_multiplier():
    assert kerasnets.MobileNet is kerasnets.MobileNetV1
    base = kerasnets.MobileNetV1(input_shape=(32, 32, 3), include_top=False)
    doubled = kerasnets.MobileNetV1(input_shape=(32, 32, 3), include_top=False, depth_multiplier=2)
    dw = [lyr for lyr in doubled.layers if isinstance(lyr, layers.DepthwiseConv2D)]
    assert all(lyr.depthwise_kernel.shape[-1] == 2 for lyr in dw)
    assert doubled.count_params() > base.count_params()


def test_v3_preprocessing_maps_pixels_to_minus_one_one(real_images):
    with_pre = kerasnets.MobileNetV3Small(input_shape=(32, 32, 3), classes=3)
    without = kerasnets.MobileNetV3Small(input_shape=(32, 32, 3), classes=3,
                                         include_preprocessing=False)
    without.set_weights(with_pre.get_weights())
    np.testing.assert_allclose(with_pre(real_images, training=False).numpy(),
                               without(real_images / 127.5 - 1.0, training=False).numpy(),
                               atol=1e-5)
