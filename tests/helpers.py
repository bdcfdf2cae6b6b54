"""Helpers shared by several test modules (imported as ``helpers``: pytest puts tests/ on the path)."""

import numpy as np

from kerasnets._keras import keras


def randomize_batchnorm(model, seed=0, spread=0.1):
    """Returns ``model`` after giving every BatchNormalization non-trivial statistics.

    Freshly built BatchNorm layers are identities (gamma 1, beta 0, mean 0, variance 1), so a
    check that two models compute the same function, or that a weight import landed in the right
    layer, could not fail on them. ``spread`` is the standard deviation of gamma and beta.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.normal(1.0, spread, gamma.shape), rng.normal(0.0, spread, beta.shape),
                rng.normal(0.0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape),
            ])
    return model
