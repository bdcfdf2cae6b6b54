"""Bad input to the builders raises ValueError naming the argument, the value and what is allowed,
never a shape error from deep inside TensorFlow."""

import pytest
import tf_keras

import kerasnets

BUILDERS = [kerasnets.MobileNetV1, kerasnets.MobileNetV2, kerasnets.MobileNetV3Large,
            kerasnets.MobileNetV3Small]


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize("alpha", [0, -1.0, "wide", None])
def test_bad_alpha(builder, alpha):
    with pytest.raises(ValueError, match=r"`alpha` must be .*alpha="):
        builder(input_shape=(32, 32, 3), alpha=alpha)


def test_alpha_too_small_for_v1():
    with pytest.raises(ValueError, match="`alpha` must be at least"):
        kerasnets.MobileNetV1(input_shape=(32, 32, 3), alpha=0.01)


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize("shape,pattern", [
    ((16, 16, 3), "at least 32"),
    ((64, 64, 4), "1 or 3 channels"),
    ((64, 64), r"\(rows, cols, channels\)"),
    ("224", r"\(rows, cols, channels\)"),
])
def test_bad_input_shape(builder, shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        builder(input_shape=shape)


@pytest.mark.parametrize("kwargs,pattern", [
    ({"classes": 0}, "`classes` must be a positive integer"),
    ({"pooling": "mean"}, "`pooling` must be one of"),
    ({"weights": "imagenet"}, "never downloads"),
    ({"weights": "/nonexistent/w.h5"}, "not a file"),
    ({"dropout_rate": 1.5}, "`dropout_rate` must be"),
    ({"drop_path_rate": -0.1}, "`drop_path_rate` must be"),
    ({"include_top": "yes"}, "`include_top` must be"),
    ({"classifier_activation": "nope"}, "`classifier_activation` must be"),
    ({"minimalistic": 1}, "`minimalistic` must be"),
])
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        kerasnets.MobileNetV3Small(input_shape=(32, 32, 3), **kwargs)


def test_input_tensor_must_match_input_shape():
    tensor = tf_keras.Input((48, 48, 3))
    with pytest.raises(ValueError, match="does not match the shape of `input_tensor`"):
        kerasnets.MobileNetV2(input_shape=(32, 32, 3), input_tensor=tensor)
    model = kerasnets.MobileNetV2(input_tensor=tensor, classes=3)
    assert model.input_shape == (None, 48, 48, 3)


@pytest.fixture(scope="module")
def v3_small_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "v3s.h5"
    kerasnets.MobileNetV3Small(input_shape=(32, 32, 3), classes=10).save_weights(str(path))
    return str(path)


def test_weights_of_another_architecture(v3_small_weights):
    with pytest.raises(ValueError, match="another architecture"):
        kerasnets.MobileNetV3Large(input_shape=(32, 32, 3), classes=10, weights=v3_small_weights)
    with pytest.raises(ValueError, match="another width"):
        kerasnets.MobileNetV3Small(input_shape=(32, 32, 3), classes=10, alpha=0.75,
                                   weights=v3_small_weights)


def test_classes_that_do_not_match_the_head(v3_small_weights):
    with pytest.raises(ValueError, match="classes: the classifier 'Logits' has 7 outputs"):
        kerasnets.MobileNetV3Small(input_shape=(32, 32, 3), classes=7, weights=v3_small_weights)
    # The backbone of the same file loads without the head.
    kerasnets.MobileNetV3Small(input_shape=(32, 32, 3), include_top=False,
                               weights=v3_small_weights)


def test_no_top_file_into_a_full_model(tmp_path):
    path = tmp_path / "notop.h5"
    kerasnets.MobileNetV2(input_shape=(32, 32, 3), include_top=False).save_weights(str(path))
    with pytest.raises(ValueError, match="saved with include_top=False"):
        kerasnets.MobileNetV2(input_shape=(32, 32, 3), weights=str(path))


def test_not_a_weights_file(tmp_path):
    path = tmp_path / "junk.h5"
    path.write_text("not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        kerasnets.MobileNetV2(input_shape=(32, 32, 3), weights=str(path))
