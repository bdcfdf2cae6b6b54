"""Weight-file checks (issue 13 item 6): a file that does not fit is refused with the actual
difference, found by comparing weight shapes, and a file for another number of input channels
can be adapted."""

import re

import numpy as np
import pytest
import tf_keras

import kerasnets
from kerasnets.models import weights as kw

SHAPE = (32, 32, 3)


@pytest.fixture(scope="module")
def v2_file(tmp_path_factory):
    """Returns the path of a MobileNetV2 (32x32x3, 10 classes) weights file."""
    path = tmp_path_factory.mktemp("w") / "v2.h5"
    kerasnets.MobileNetV2(input_shape=SHAPE, classes=10).save_weights(str(path))
    return str(path)


def refusal(builder, **kwargs):
    """Returns the text of the ValueError ``builder(**kwargs)`` raises."""
    with pytest.raises(ValueError) as info:
        builder(**kwargs)
    return str(info.value)


def numbered(text):
    """Returns how many differences (``[1] ...``, ``[2] ...``) an error text names."""
    return len(re.findall(r"\[\d+\] ", text))


def test_input_channels_are_named_with_the_way_to_adapt(v2_file):
    text = refusal(kerasnets.MobileNetV2, input_shape=(32, 32, 1), classes=10, weights=v2_file)
    assert "input channels: the first conv 'Conv1' takes 1 input channel(s) in the model but 3 " \
           "in the file" in text
    assert "adapt_input_channels=True" in text
    assert "width" not in text and "classes" not in text


@pytest.mark.parametrize("channels", [1, 3])
def test_adapted_first_conv_gives_the_file_models_outputs(channels, tmp_path, real_images):
    """A gray image through the adapted 1-channel model equals the RGB model on the image
    repeated 3 times; an RGB image through the adapted 3-channel model equals the 1-channel
    model on the channel mean."""
    source = kerasnets.MobileNetV2(input_shape=(32, 32, 4 - channels), classes=10)
    path = tmp_path / "source.h5"
    source.save_weights(str(path))
    model = kerasnets.MobileNetV2(input_shape=(32, 32, channels), classes=10)
    kw.load_weights(model, str(path), adapt_input_channels=True)
    rgb = real_images[:4] / 127.5 - 1.0
    gray = rgb.mean(axis=-1, keepdims=True)
    if channels == 1:
        want, got = source(np.repeat(gray, 3, axis=-1)), model(gray)
    else:
        want, got = source(gray), model(rgb)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)


def test_classes_and_channels_at_once_are_both_named(v2_file):
    text = refusal(kerasnets.MobileNetV2, input_shape=(32, 32, 1), classes=7, weights=v2_file)
    assert "[1] input channels" in text
    assert "[2] classes: the classifier 'predictions' has 7 outputs in the model but 10 in the " \
           "file" in text


def test_width_names_the_channels(v2_file):
    text = refusal(kerasnets.MobileNetV2, input_shape=SHAPE, classes=10, alpha=0.5,
                   weights=v2_file)
    assert numbered(text) == 1 and "[1] width: layer 'Conv1'" in text
    assert "16 channels in the model, 32 in the file" in text and "alpha" in text


def test_no_top_file(tmp_path):
    path = tmp_path / "notop.h5"
    kerasnets.MobileNetV2(input_shape=SHAPE, include_top=False).save_weights(str(path))
    text = refusal(kerasnets.MobileNetV2, input_shape=SHAPE, weights=str(path))
    assert "no top: the model's head layers ['predictions'] are not in the file" in text
    assert "include_top=False" in text


def test_kernel_sizes_and_missing_layers_are_another_architecture(tmp_path):
    path = tmp_path / "minimal.h5"
    kerasnets.MobileNetV3Small(input_shape=SHAPE, minimalistic=True).save_weights(str(path))
    text = refusal(kerasnets.MobileNetV3Small, input_shape=SHAPE, weights=str(path))
    assert numbered(text) == 1 and "[1] architecture:" in text
    d = kw.weight_differences(kerasnets.MobileNetV3Small(input_shape=SHAPE), str(path))
    # The SE layers are missing and the 5x5 depthwise kernels are 3x3 in the file.
    assert [x.cause for x in d] == ["architecture"] and d[0].count > 8


def test_unrelated_file_is_another_architecture(v2_file):
    text = refusal(kerasnets.MobileNetV1, input_shape=SHAPE, classes=10, weights=v2_file)
    assert "architecture: only 1 of the model's" in text or \
        "architecture: only 0 of the model's" in text


def _flatten_net(size):
    inputs = tf_keras.Input((size, size, 3))
    x = tf_keras.layers.Conv2D(4, 3, strides=2, name="conv")(inputs)
    x = tf_keras.layers.Flatten(name="flatten")(x)
    x = tf_keras.layers.Dense(8, name="fc1")(x)
    return tf_keras.Model(inputs, tf_keras.layers.Dense(3, name="predictions")(x))


def test_flatten_head_names_the_input_size(tmp_path):
    path = tmp_path / "flat.h5"
    _flatten_net(33).save_weights(str(path))
    d = kw.weight_differences(_flatten_net(17), str(path))
    assert [x.cause for x in d] == ["input_size"]
    assert "'fc1' takes the flattened 8x8x4 map (256 features) in the model but a 16x16x4 " \
           "map in the file" in d[0].text


def test_adapt_is_refused_when_something_else_differs(v2_file):
    model = kerasnets.MobileNetV2(input_shape=(32, 32, 1), classes=7)
    with pytest.raises(ValueError, match=r"\[1\] classes"):
        kw.load_weights(model, v2_file, adapt_input_channels=True)


def test_width_of_a_headless_model_is_not_taken_for_classes(tmp_path):
    path = tmp_path / "notop.h5"
    kerasnets.MobileNetV2(input_shape=SHAPE, include_top=False).save_weights(str(path))
    d = kw.weight_differences(
        kerasnets.MobileNetV2(input_shape=SHAPE, include_top=False, alpha=1.4), str(path),
        include_top=False)
    assert [x.cause for x in d] == ["width"]
