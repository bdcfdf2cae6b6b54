"""Ablation switches of the MobileNet builders (issue 17 item 2): arguments, not forks.

MobileNetV2 ``linear_bottleneck=False`` (paper Fig. 6a), MobileNetV3 ``activation="relu"``
(paper Table 5) and ``se=False``; the defaults stay the papers'.
"""

import numpy as np
import pytest

import kerasnets
from helpers import randomize_batchnorm
from kerasnets._keras import layers
from kerasnets.layers import HardSigmoid, HardSwish

SHAPE = (32, 32, 3)


def kinds(model, cls):
    return [lyr for lyr in model.layers if type(lyr) is cls]


def test_v2_nonlinear_bottleneck_puts_relu6_after_every_projection(tmp_path, real_images):
    linear = kerasnets.create_model("mobilenet_v2", input_shape=SHAPE, classes=10,
                                    classifier_activation=None)
    randomize_batchnorm(linear)
    relu6 = kerasnets.create_model("mobilenet_v2", input_shape=SHAPE, classes=10,
                                   linear_bottleneck=False)
    projections = [lyr for lyr in relu6.layers if lyr.name.endswith("project_BN")]
    assert len(projections) == 17  # Table 2: 1 + 2 + 3 + 4 + 3 + 3 + 1 bottlenecks
    for bn in projections:
        (act,) = [node.outbound_layer for node in bn.outbound_nodes]
        assert isinstance(act, layers.ReLU) and act.get_config()["max_value"] == 6.0
        assert act.name == bn.name.replace("project_BN", "project_relu")
    assert not [lyr for lyr in linear.layers if lyr.name.endswith("project_relu")]
    # Activations only: the same weights, so a default file loads into the ablation.
    assert relu6.count_params() == linear.count_params()
    path = tmp_path / "v2.h5"
    linear.save_weights(str(path))
    loaded = kerasnets.MobileNetV2(input_shape=SHAPE, classes=10, linear_bottleneck=False,
                                   classifier_activation=None, weights=str(path))
    x = real_images[:4] / 127.5 - 1.0
    assert np.abs(loaded(x, training=False).numpy() - linear(x, training=False).numpy()).max() > 1e-3


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "mobilenet_v3_large"])
def test_v3_relu_replaces_every_hard_swish(name):
    paper = kerasnets.create_model(name, input_shape=SHAPE)
    relu = kerasnets.create_model(name, input_shape=SHAPE, activation="relu")
    hard_swish = kinds(paper, HardSwish)
    assert hard_swish and not kinds(relu, HardSwish)
    assert len(kinds(relu, layers.ReLU)) == len(kinds(paper, layers.ReLU)) + len(hard_swish)
    for lyr in hard_swish:
        assert isinstance(relu.get_layer(lyr.name), layers.ReLU)
    # The SE gates keep their hard-sigmoid; no weight changes.
    assert len(kinds(relu, HardSigmoid)) == len(kinds(paper, HardSigmoid)) > 0
    assert relu.count_params() == paper.count_params()


@pytest.mark.parametrize("name,se_blocks", [
    # The SE column of the paper's Table 1 (Large: 8 checked rows) and Table 2 (Small: 9).
    ("mobilenet_v3_large", 8), ("mobilenet_v3_small", 9),
])
def test_v3_without_se_loses_exactly_the_se_convs(name, se_blocks):
    paper = kerasnets.create_model(name, input_shape=SHAPE)
    plain = kerasnets.create_model(name, input_shape=SHAPE, se=False)
    se_convs = [lyr for lyr in paper.layers
                if "squeeze_excite" in lyr.name and isinstance(lyr, layers.Conv2D)]
    assert len(se_convs) == 2 * se_blocks
    assert len(kinds(paper, layers.Multiply)) == se_blocks
    assert not kinds(plain, layers.Multiply) and not kinds(plain, HardSigmoid)
    assert not [lyr for lyr in plain.layers if "squeeze_excite" in lyr.name]
    assert plain.count_params() == paper.count_params() - sum(c.count_params() for c in se_convs)


@pytest.mark.parametrize("builder,kwargs,pattern", [
    (kerasnets.MobileNetV2, {"linear_bottleneck": 0},
     "`linear_bottleneck` must be True or False; received linear_bottleneck=0"),
    (kerasnets.MobileNetV3Small, {"activation": "swish"},
     r"`activation` must be one of \('hard_swish', 'relu'\); received activation='swish'"),
    (kerasnets.MobileNetV3Large, {"se": "no"}, "`se` must be True or False; received se='no'"),
])
def test_bad_switches(builder, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        builder(input_shape=SHAPE, **kwargs)
