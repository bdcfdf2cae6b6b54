"""Profiler MACs and parameters against independent figures: the papers and keras.applications
(../shared/REFERENCE.md), and a hand count."""

import pytest

import kerasnets
from kerasnets._keras import keras, layers

# name, kwargs, keras.applications MACs (REFERENCE.md, measured), paper MACs, paper params
REFERENCE = [
    ("mobilenet_v1", {}, 568.7e6, 569e6, 4.2e6),
    ("mobilenet_v2", {}, 300.8e6, 300e6, 3.4e6),
    ("mobilenet_v3_large", {}, 216.6e6, 219e6, 5.4e6),
    ("mobilenet_v3_large", {"alpha": 0.75}, 154.6e6, 155e6, 4.0e6),
    ("mobilenet_v3_large_minimalistic", {}, 209.1e6, 209e6, None),
    ("mobilenet_v3_small", {}, 56.5e6, 56e6, 2.5e6),
]


@pytest.mark.parametrize("name,kwargs,keras_macs,paper_macs,paper_params", REFERENCE)
def test_macs_match_keras_and_paper(name, kwargs, keras_macs, paper_macs, paper_params):
    prof = kerasnets.profile(kerasnets.create_model(name, input_shape=(224, 224, 3), **kwargs))
    assert abs(prof.macs - keras_macs) / keras_macs < 0.01
    assert abs(prof.macs - paper_macs) / paper_macs < 0.03
    if paper_params:
        # keras' MobileNetV3 head (biased 1x1 conv, no BN) differs slightly from the paper.
        assert abs(prof.params - paper_params) / paper_params < 0.05
    assert prof.macs == sum(row.macs for row in prof.layers)


def test_hand_counted_macs_and_params():
    x = inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(16, 3, padding="same", name="c")(x)            # 8*8*3*3*3*16
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", name="d")(x)  # 4*4*3*3*16
    x = layers.Conv2D(8, 1, groups=2, name="g")(x)                   # 4*4*(16/2)*8
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(10, name="fc")(x)                               # 8*10
    prof = kerasnets.profile(keras.Model(inp, x))
    by_name = {row.name: row for row in prof.layers}
    assert by_name["c"].macs == 8 * 8 * 3 * 3 * 3 * 16
    assert by_name["d"].macs == 4 * 4 * 3 * 3 * 16
    assert by_name["g"].macs == 4 * 4 * 8 * 8
    assert by_name["fc"].macs == 80
    assert prof.params == (3 * 3 * 3 * 16 + 16) + (3 * 3 * 16 + 16) + (8 * 8 + 8) + (8 * 10 + 10)
    text = prof.table()
    assert "fc" in text and f"{prof.macs:,}" in text


def test_profile_needs_static_shapes():
    with pytest.raises(ValueError, match="static spatial shapes"):
        kerasnets.profile(kerasnets.MobileNetV3Small(input_shape=(None, None, 3)))


def test_profile_rejects_non_models():
    with pytest.raises(ValueError, match="tf_keras Model"):
        kerasnets.profile("mobilenet_v2")
