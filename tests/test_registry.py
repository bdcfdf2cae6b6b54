"""Registry-wide tests: every registered model against its keras.applications twin.

Parametrized over ``kerasnets.list_models()``, so a model is covered the day it is registered.
"""

import os

import numpy as np
import pytest
import tf_keras

import kerasnets
from helpers import randomize_batchnorm
from kerasnets.models.registry import get_entry

ALL = kerasnets.list_models()
TWINS = [n for n in ALL if get_entry(n).keras_twin]
# Deeper variants of a builder whose shallower sibling is round-tripped too (the same code with
# more blocks; 25-60 s each on 2 cores). KERASNETS_CONTRACT=all includes them.
DEEPER_VARIANTS = {"densenet169", "densenet201", "densenet264", "densenet_bc_190_k40",
                   "densenet_bc_250_k24", "resnet101"}
ROUND_TRIP = ALL if os.environ.get("KERASNETS_CONTRACT") == "all" else [
    n for n in ALL if n not in DEEPER_VARIANTS]


def small_shape(name):
    """Returns the smallest input shape a registered model takes (parameter counts do not depend
    on the input size, so tests build small models)."""
    size = max(32, get_entry(name).min_size)
    return (size, size, 3)


def keras_twin(name, **kwargs):
    """Returns the keras.applications model that ``name`` must reproduce."""
    entry = get_entry(name)
    builder = getattr(tf_keras.applications, entry.keras_twin)
    return builder(weights=None, **entry.keras_twin_kwargs, **kwargs)


def test_registry_lists_the_foundation_models():
    for name in ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"):
        assert name in ALL
    assert ALL == sorted(ALL)
    assert kerasnets.list_models("mobilenet_v3_*") == [n for n in ALL if n.startswith("mobilenet_v3_")]


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ValueError, match="mobilenet_v3_large") as info:
        kerasnets.create_model("mobilenet_v3_larg")
    assert "Unknown model name 'mobilenet_v3_larg'" in str(info.value)


def test_fixed_arguments_cannot_be_overridden():
    with pytest.raises(ValueError, match="minimalistic"):
        kerasnets.create_model("mobilenet_v3_small_minimalistic", minimalistic=False)


def test_create_model_passes_arguments():
    model = kerasnets.create_model("mobilenet_v3_small", input_shape=(64, 64, 3), classes=7,
                                   alpha=0.75)
    assert model.output_shape == (None, 7)
    assert model.input_shape == (None, 64, 64, 3)


@pytest.mark.parametrize("name", TWINS)
@pytest.mark.parametrize("include_top", [True, False])
def test_keras_twin_params_and_weights(name, include_top, real_images, tmp_path):
    """Same parameter count as keras.applications, and its weight file (full or no-top) gives
    identical outputs on real images."""
    theirs = keras_twin(name, input_shape=small_shape(name), include_top=include_top, classes=10)
    randomize_batchnorm(theirs)
    path = tmp_path / "keras_twin.h5"
    theirs.save_weights(str(path))
    ours = kerasnets.create_model(name, input_shape=small_shape(name), include_top=include_top,
                                  classes=10, weights=str(path))
    assert ours.count_params() == theirs.count_params()
    assert ours.output_shape == theirs.output_shape
    # Both models see the same real images; the scale does not matter for equality. Had the
    # weights not loaded, ours would keep its own random initialization and differ.
    x = tf_keras.layers.Resizing(*small_shape(name)[:2])(real_images / 127.5 - 1.0)
    expected = theirs(x, training=False).numpy()
    got = ours(x, training=False).numpy()
    assert np.max(np.abs(expected - got)) <= 1e-5


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_pure_keras_layers_and_keras_format_round_trip(name, tmp_path, real_images):
    model = kerasnets.create_model(name, input_shape=small_shape(name), classes=4)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert not kinds & {"TFOpLambda", "SlicingOpLambda", "Lambda"}
    path = tmp_path / "model.keras"
    model.save(str(path))
    loaded = tf_keras.models.load_model(str(path))
    x = tf_keras.layers.Resizing(*small_shape(name)[:2])(real_images[:4])
    # Multi-exit models (kerasnets.models.early_exit) return one output per exit.
    got, want = loaded(x, training=False), model(x, training=False)
    got, want = (got if isinstance(got, list) else [got]), (want if isinstance(want, list) else [want])
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    assert [type(layer).__name__ for layer in loaded.layers] == \
        [type(layer).__name__ for layer in model.layers]
