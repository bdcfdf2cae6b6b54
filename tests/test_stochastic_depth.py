"""Stochastic depth (``drop_path_rate``) in every registered model whose builder takes it.

Parametrized over the registry, so a family is covered the day it is registered: off by default,
one ``StochasticDepth`` layer on the residual branch right before its shortcut addition, rates
rising linearly with depth, no extra weights, identity at inference and active in training.
"""

import inspect

import numpy as np
import pytest
import tf_keras

import kerasnets
from kerasnets._keras import layers
from kerasnets.layers import StochasticDepth
from kerasnets.models.registry import get_entry

RATE = 0.2
DROP_PATH_MODELS = [n for n in kerasnets.list_models()
                    if "drop_path_rate" in inspect.signature(get_entry(n).builder).parameters]

# Typed from the papers' tables, not from the builders: the number of blocks B the linear rule
# runs over (timm's rule: block i gets RATE * i / (B - 1)) and the indices of the blocks with an
# identity shortcut (stride 1, channels unchanged). Block 0 gets rate 0, hence no layer.
V3_LARGE = (15, [0, 2, 4, 5, 7, 8, 9, 11, 13, 14])   # MobileNetV3 Table 1: 15 bnecks
V3_SMALL = (11, [2, 4, 5, 7, 9, 10])                  # MobileNetV3 Table 2: 11 bnecks
RESIDUAL_BLOCKS = {
    # MobileNetV2 Table 2: 17 bottlenecks; the repeats of the stages after the first keep the
    # channels, except the first block of the (6, 96, 3, 1) stage (64 -> 96).
    "mobilenet_v2": (17, [2, 4, 5, 7, 8, 9, 11, 12, 14, 15]),
    "mobilenet_v3_large": V3_LARGE,
    "mobilenet_v3_large_minimalistic": V3_LARGE,
    "mobilenet_v3_small": V3_SMALL,
    "mobilenet_v3_small_minimalistic": V3_SMALL,
    # MobileNetV4 Tables 10 and 11: the rule runs over the UIB / fused IB rows (12 and 22), not
    # the plain conv rows; rows with stride 2 or new channels have no shortcut.
    "mobilenet_v4_conv_small": (12, [1, 2, 3, 4, 5, 7, 8, 9, 10, 11]),
    "mobilenet_v4_conv_medium": (22, [2, *range(4, 11), *range(12, 22)]),
    # ResNet Table 1 ([3, 4, 6, 3] and [3, 4, 23, 3] blocks) and ResNeXt Table 1: every block
    # adds its shortcut (a projection in the first block of each stage).
    "resnet50": (16, list(range(16))),
    "resnet101": (33, list(range(33))),
    "resnext50_32x4d": (16, list(range(16))),
    # Xception Figure 5: 12 residual modules (3 entry, 8 middle, 1 exit).
    "xception": (12, list(range(12))),
}
# Where the residual branch ends, by layer name, for the families whose names say it.
BRANCH_END = {"resnet": "_3_bn"}


def test_every_model_with_drop_path_rate_is_listed():
    """A family registered without its row here would be checked below only loosely (rates
    rising, within (0, RATE]), so this asks for the row typed from its paper."""
    assert set(DROP_PATH_MODELS) == set(RESIDUAL_BLOCKS)


def consumers(model, layer):
    """Returns the layers of ``model`` that take ``layer``'s output."""
    return [node.outbound_layer for node in layer.outbound_nodes
            if node.outbound_layer in model.layers]


@pytest.mark.parametrize("name", DROP_PATH_MODELS)
def test_drop_path_is_off_by_default_linear_in_depth_and_identity_at_inference(name,
                                                                               real_images):
    entry = get_entry(name)
    size = max(32, entry.min_size)
    plain = kerasnets.create_model(name, input_shape=(size, size, 3), classes=10)
    assert not any(isinstance(lyr, StochasticDepth) for lyr in plain.layers)
    dropped = kerasnets.create_model(name, input_shape=(size, size, 3), classes=10,
                                     drop_path_rate=RATE)
    sd = [lyr for lyr in dropped.layers if isinstance(lyr, StochasticDepth)]
    adds = [lyr for lyr in dropped.layers if isinstance(lyr, layers.Add)]
    rates = [lyr.rate for lyr in sd]
    # Each on a residual branch, feeding only its shortcut addition.
    for lyr in sd:
        assert [type(c) for c in consumers(dropped, lyr)] == [layers.Add], lyr.name
    assert rates and rates == sorted(rates) and 0 < rates[0] and rates[-1] <= RATE
    if name in RESIDUAL_BLOCKS:
        blocks, residual = RESIDUAL_BLOCKS[name]
        assert len(adds) == len(residual)
        np.testing.assert_allclose(rates, [RATE * i / (blocks - 1) for i in residual if i])
    suffix = BRANCH_END.get(entry.family)
    if suffix:
        for lyr in sd:
            assert [node.inbound_layers.name for node in lyr.inbound_nodes] == [
                lyr.name.replace("_drop_path", suffix)]

    assert dropped.count_params() == plain.count_params()
    for lyr in plain.layers:  # by name: the extra layers change the order of model.weights
        if lyr.weights:
            dropped.get_layer(lyr.name).set_weights(lyr.get_weights())
    x = tf_keras.layers.Resizing(size, size)(real_images / 127.5 - 1.0)
    np.testing.assert_allclose(dropped(x, training=False).numpy(),
                               plain(x, training=False).numpy(), atol=1e-6)
    assert not np.allclose(dropped(x, training=True).numpy(), plain(x, training=True).numpy(),
                           atol=1e-4)
