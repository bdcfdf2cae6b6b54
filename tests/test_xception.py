"""Xception against the paper (Chollet, 2017, Figure 5 and section 3) and keras.applications.

The registry-wide test (test_registry.py) checks parameters and weight import against a keras
twin built in the same session; here a keras file whose unnamed shortcut layers carry other
session-dependent names must load too. Stochastic depth: test_stochastic_depth.py.
"""

import numpy as np
import pytest
import tf_keras

import kerasnets
from kerasnets._keras import layers

SIZE = 71  # keras.applications.Xception's smallest input


def test_architecture_follows_figure_5():
    model = kerasnets.Xception(input_shape=(SIZE, SIZE, 3), include_top=False)
    # Section 3: "36 convolutional layers forming the feature extraction base": two 3x3 convs
    # and 34 separable convs; the 1x1 shortcut convs are not counted.
    separable = [lyr for lyr in model.layers if isinstance(lyr, layers.SeparableConv2D)]
    full = [lyr for lyr in model.layers if type(lyr) is layers.Conv2D and lyr.kernel_size != (1, 1)]
    assert len(separable) == 34 and len(full) == 2
    # Residual connections around every entry, middle and exit flow module: 3 + 8 + 1.
    adds = [lyr for lyr in model.layers if isinstance(lyr, layers.Add)]
    assert len(adds) == 12
    shortcuts = [lyr for lyr in model.layers if type(lyr) is layers.Conv2D
                 and lyr.kernel_size == (1, 1)]
    assert [lyr.filters for lyr in shortcuts] == [128, 256, 728, 1024]
    # Every convolution is followed by BatchNorm.
    for lyr in separable + full + shortcuts:
        consumers = [n.outbound_layer for n in lyr.outbound_nodes]
        assert [type(c) for c in consumers] == [layers.BatchNormalization], lyr.name
    assert model.output_shape == (None, 3, 3, 2048)


def test_keras_file_with_other_shortcut_names_loads(tmp_path, real_images):
    # Layers created before keras.applications.Xception shift the automatic names of its
    # unnamed shortcut convs and BatchNorms (conv2d_2 ... instead of conv2d ...).
    tf_keras.layers.Conv2D(1, 1)
    tf_keras.layers.Conv2D(1, 1)
    tf_keras.layers.BatchNormalization()
    theirs = tf_keras.applications.Xception(weights=None, input_shape=(SIZE, SIZE, 3),
                                            classes=10)
    rng = np.random.default_rng(0)
    for lyr in theirs.layers:
        if isinstance(lyr, tf_keras.layers.BatchNormalization):
            gamma, beta, mean, var = lyr.get_weights()
            lyr.set_weights([rng.normal(1, 0.1, gamma.shape), rng.normal(0, 0.1, beta.shape),
                             rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
    unnamed = [lyr.name for lyr in theirs.layers
               if type(lyr) in (tf_keras.layers.Conv2D, tf_keras.layers.BatchNormalization)
               and not lyr.name.startswith("block")]
    assert len(unnamed) == 8 and "conv2d" not in unnamed
    path = tmp_path / "xception.h5"
    theirs.save_weights(str(path))

    ours = kerasnets.Xception(input_shape=(SIZE, SIZE, 3), classes=10, weights=str(path))
    x = tf_keras.layers.Resizing(SIZE, SIZE)(real_images / 127.5 - 1.0)
    np.testing.assert_allclose(ours(x, training=False).numpy(),
                               theirs(x, training=False).numpy(), atol=1e-5)
    assert ours.get_layer("block13_shortcut_bn").name == "block13_shortcut_bn"
    with pytest.raises(ValueError, match="classes: the classifier 'predictions' has"):
        kerasnets.Xception(input_shape=(SIZE, SIZE, 3), classes=3, weights=str(path))


@pytest.mark.parametrize("kwargs,pattern", [
    ({"input_shape": (70, 70, 3)}, "at least 71"),
    ({"drop_path_rate": "0.1"}, "`drop_path_rate` must be a number"),
    ({"input_shape": (299, 299, 2)}, "1 or 3 channels"),
    ({"classifier_activation": "bogus"}, "`classifier_activation` must be"),
])
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        kerasnets.Xception(**kwargs)
