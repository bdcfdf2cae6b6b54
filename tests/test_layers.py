"""The custom layers against their defining formulas, and serialization of models using them."""

import numpy as np
import pytest
import tf_keras

import kerasnets
from kerasnets.layers import HardSigmoid, HardSwish, StochasticDepth
from kerasnets.layers.blocks import drop_path_rates, residual_add

X = np.linspace(-6.0, 6.0, 97, dtype="float32").reshape(1, 97)


def test_hard_sigmoid_is_relu6_of_x_plus_3_over_6():
    # Howard et al. 2019, eq. (2): h-swish[x] = x * ReLU6(x + 3) / 6
    expected = np.clip(X + 3.0, 0.0, 6.0) / 6.0
    np.testing.assert_allclose(HardSigmoid()(X).numpy(), expected, atol=1e-7)


def test_hard_swish_matches_the_paper_and_keras_hard_silu():
    expected = X * np.clip(X + 3.0, 0.0, 6.0) / 6.0
    got = HardSwish()(X).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert got[0, 0] == 0.0 and got[0, -1] == pytest.approx(6.0)


def test_stochastic_depth_is_identity_at_inference():
    layer = StochasticDepth(0.5)
    x = np.ones((64, 3, 3, 2), "float32")
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)


def test_stochastic_depth_drops_whole_samples_and_keeps_the_expectation():
    layer = StochasticDepth(0.25)
    x = np.ones((4000, 2, 2, 3), "float32")
    y = layer(x, training=True).numpy()
    per_sample = y.reshape(4000, -1)
    # Each sample is either dropped entirely or kept and scaled by 1 / (1 - rate).
    values = np.unique(per_sample)
    assert len(values) == 2 and values[0] == 0.0
    assert values[1] == pytest.approx(1 / 0.75, rel=1e-6)
    assert np.all(per_sample.min(axis=1) == per_sample.max(axis=1))
    kept = np.mean(per_sample[:, 0] > 0)
    assert abs(kept - 0.75) < 0.03
    assert abs(y.mean() - 1.0) < 0.05


@pytest.mark.parametrize("rate", [-0.1, 1.0, 2])
def test_stochastic_depth_rejects_bad_rates(rate):
    with pytest.raises(ValueError, match="rate"):
        StochasticDepth(rate)


@pytest.mark.parametrize("fmt", ["h5", "savedmodel"])
def test_h5_and_savedmodel_round_trip_with_custom_layers(fmt, tmp_path, real_images):
    model = kerasnets.MobileNetV3Small(input_shape=(32, 32, 3), classes=5, drop_path_rate=0.1)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"HardSwish", "HardSigmoid", "StochasticDepth"} <= kinds
    path = tmp_path / ("saved" if fmt == "savedmodel" else "model.h5")
    model.save(str(path), save_format="tf" if fmt == "savedmodel" else "h5")
    loaded = tf_keras.models.load_model(str(path))
    x = real_images[:4]
    np.testing.assert_allclose(loaded(x, training=False).numpy(),
                               model(x, training=False).numpy(), atol=1e-6)


def test_drop_path_rates_rise_linearly_from_zero_to_the_rate():
    # timm's rule (Huang et al. 2016, "linear decay"): block i of B gets rate * i / (B - 1).
    np.testing.assert_allclose(drop_path_rates(0.2, 5), [0.0, 0.05, 0.1, 0.15, 0.2])
    assert drop_path_rates(0.3, 1) == [0.0]


def test_residual_add_wraps_the_branch_only_when_the_rate_is_positive():
    shortcut, branch = tf_keras.Input((4, 4, 2)), tf_keras.Input((4, 4, 2))
    plain = tf_keras.Model([shortcut, branch], residual_add(shortcut, branch, 0.0, "dp", "add"))
    assert not any(isinstance(lyr, StochasticDepth) for lyr in plain.layers)
    dropped = tf_keras.Model([shortcut, branch],
                             residual_add(shortcut, branch, 0.5, "dp", "add2"))
    (sd,) = [lyr for lyr in dropped.layers if isinstance(lyr, StochasticDepth)]
    assert sd.name == "dp" and sd.rate == 0.5
    a, b = np.ones((8, 4, 4, 2), "float32"), np.full((8, 4, 4, 2), 2.0, "float32")
    np.testing.assert_array_equal(dropped([a, b], training=False).numpy(), a + b)
    # In training each sample's branch is dropped (a) or kept and scaled by 1 / (1 - 0.5) (a + 2b).
    out = dropped([a, b], training=True).numpy().reshape(8, -1)
    assert set(np.unique(out)) <= {1.0, 5.0}
