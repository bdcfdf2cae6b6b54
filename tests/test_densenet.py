"""DenseNet: parameter counts against keras.applications and the paper, weight import from
keras.applications files, MACs, serialization, and bad input (the training
benchmark: tests/test_train_densenet_cifar.py)."""

import functools

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from tf_keras.applications import densenet as keras_densenet
# keras.applications' generic DenseNet(blocks) builder is not exported; its module is.
from tf_keras.src.applications.densenet import DenseNet as KerasDenseNet

import kerasnets
from helpers import randomize_batchnorm
from kerasnets.layers import custom_objects

# keras.applications.DenseNet121's (tf_keras 2.21) parameter count, include_top=True, 1000
# classes (../shared/REFERENCE.md), for the generic DenseNet(blocks) builder, which the
# registry does not list.
KERAS_DENSENET121_PARAMS = 8_062_504
# Parameters in the paper's Table 2 (CIFAR), by registry name (DenseNet L=40 k=12,
# DenseNet-BC L=100 k=12, L=250 k=24, L=190 k=40).
PAPER_CIFAR_PARAMS = {
    "densenet_40_k12": 1.0e6,
    "densenet_bc_100_k12": 0.8e6,
    "densenet_bc_250_k24": 15.3e6,
    "densenet_bc_190_k40": 25.6e6,
}
HEAVY_CIFAR = ("densenet_bc_250_k24", "densenet_bc_190_k40")
KERAS_DENSENET121_MACS = 2834.2e6  # REFERENCE.md, conv + FC MACs at 224x224
PAPER_DENSENET121_FLOPS = 2.9e9    # the paper (REFERENCE.md); its "FLOPs" are MACs
SIZE = 64  # small input for the weight-import checks; the stem and four blocks need >= 32


def depth_of(model):
    """Returns the number of conv and fully-connected layers, the paper's depth L."""
    return sum(isinstance(layer, (tf_keras.layers.Conv2D, tf_keras.layers.Dense))
               for layer in model.layers)


@pytest.fixture(scope="module")
def imagenet_batch(real_images):
    """Returns the real CIFAR images resized to SIZE x SIZE, raw [0, 255] and preprocessed."""
    raw = tf.image.resize(real_images, (SIZE, SIZE)).numpy()
    return raw, keras_densenet.preprocess_input(raw.copy())


def outputs(model, x):
    """Returns ``model``'s inference outputs on ``x`` (an eager call: no graph to trace)."""
    return model(x, training=False).numpy()


@functools.lru_cache(maxsize=None)
def cifar_model(name):
    """Returns the registered CIFAR model ``name``, built once for the tests that inspect it."""
    return kerasnets.create_model(name)


# ---------------------------------------------------------------- ImageNet DenseNets (Table 1)

def test_densenet121_table_params_depth_and_macs():
    model = kerasnets.DenseNet([6, 12, 24, 16], input_shape=(224, 224, 3))
    assert model.name == "densenet121"
    result = kerasnets.profile(model)
    assert result.params == KERAS_DENSENET121_PARAMS
    # 1 stem conv + 2 convs in each of 58 dense layers + 3 transitions + the classifier.
    assert depth_of(model) == 121
    assert abs(result.macs - KERAS_DENSENET121_MACS) <= 0.01 * KERAS_DENSENET121_MACS
    assert abs(result.macs - PAPER_DENSENET121_FLOPS) <= 0.03 * PAPER_DENSENET121_FLOPS


@pytest.mark.slow
@pytest.mark.parametrize("builder", [kerasnets.DenseNet169, kerasnets.DenseNet201])
def test_depth_is_the_number_in_the_name(builder):
    # As for DenseNet-121, the name is the number of conv and FC layers. (Parameter counts
    # against keras.applications: test_registry.py.)
    model = builder(input_shape=(32, 32, 3))
    assert depth_of(model) == int(builder.__name__[len("DenseNet"):])


@pytest.mark.slow
def test_densenet264_layers_equal_keras_densenet_6_12_64_48():
    ours = kerasnets.DenseNet264(input_shape=(32, 32, 3))
    theirs = KerasDenseNet([6, 12, 64, 48], weights=None, input_shape=(32, 32, 3))
    assert ours.count_params() == theirs.count_params() == 33_736_232

    def weighted(model):
        return [(layer.name, [tuple(w.shape) for w in layer.weights])
                for layer in model.layers if layer.weights]

    # Same names and weight shapes, so a keras DenseNet([6, 12, 64, 48]) file loads by name.
    assert weighted(ours) == weighted(theirs)
    # The paper names it 264; counted like 121/169/201 it has 1 + 2 * 130 + 3 + 1 = 265 layers.
    assert depth_of(ours) == 265


@pytest.mark.parametrize("include_top", [True, False])
def test_keras_weights_give_identical_outputs(include_top, imagenet_batch, tmp_path):
    _, x = imagenet_batch
    kwargs = dict(input_shape=(SIZE, SIZE, 3), include_top=include_top)
    if include_top:
        kwargs["classifier_activation"] = None  # compare logits, not near-uniform softmax
    theirs = tf_keras.applications.DenseNet121(weights=None, **kwargs)
    randomize_batchnorm(theirs)
    path = tmp_path / ("densenet121.h5" if include_top else "densenet121_notop.h5")
    theirs.save_weights(str(path))
    ours = kerasnets.DenseNet121(weights=str(path), **kwargs)
    expected = outputs(theirs, x)
    got = outputs(ours, x)
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= 1e-5
    # Not vacuous: the outputs vary over the real images (randomly initialized convs of another
    # model would give other outputs).
    assert np.std(expected, axis=0).mean() > 1e-3


@pytest.fixture(scope="module")
def small_keras_densenet(tmp_path_factory):
    """Returns a keras.applications ``DenseNet([1, 1, 1, 1])`` without top, with random
    BN statistics, and the path of its saved weights: a fast stand-in with the same layers."""
    model = KerasDenseNet([1, 1, 1, 1], weights=None, include_top=False,
                                    input_shape=(SIZE, SIZE, 3))
    randomize_batchnorm(model)
    path = tmp_path_factory.mktemp("small_densenet") / "notop.h5"
    model.save_weights(str(path))
    return model, path


def test_include_preprocessing_equals_keras_preprocess_input(imagenet_batch,
                                                            small_keras_densenet):
    raw, preprocessed = imagenet_batch
    theirs, path = small_keras_densenet
    ours = kerasnets.DenseNet([1, 1, 1, 1], weights=str(path), include_top=False,
                              input_shape=(SIZE, SIZE, 3), include_preprocessing=True)
    expected = outputs(theirs, preprocessed)
    # (x - 255 m) / (255 s) and (x / 255 - m) / s differ only by float32 rounding.
    assert np.max(np.abs(outputs(ours, raw) - expected)) <= 1e-5
    assert np.std(expected) > 1e-2


def test_no_top_file_for_a_full_model_is_refused(small_keras_densenet):
    _, path = small_keras_densenet
    with pytest.raises(ValueError,
                       match=r"no top: the model's head layers \['predictions'\] are not"):
        kerasnets.DenseNet([1, 1, 1, 1], weights=str(path), input_shape=(SIZE, SIZE, 3))


def test_generic_densenet_follows_its_arguments():
    model = kerasnets.DenseNet([2, 2], growth_rate=8, bottleneck=False, compression=1.0,
                               input_shape=(32, 32, 3), classes=5)
    assert model.name == "densenet"
    # Stem 2k = 16 maps, +2k per block, a transition that keeps all maps: 16 + 16 + 16.
    assert model.get_layer("conv1/conv").filters == 16
    assert model.get_layer("relu").output_shape == (None, 4, 4, 48)
    assert model.output_shape == (None, 5)
    assert depth_of(model) == 1 + 4 + 1 + 1


# -------------------------------------------------------------------- CIFAR DenseNets (Table 2)

@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n in HEAVY_CIFAR else n for n in PAPER_CIFAR_PARAMS
])
def test_cifar_params_and_depth_match_the_paper(name):
    model = cifar_model(name)
    paper = PAPER_CIFAR_PARAMS[name]
    assert abs(model.count_params() - paper) <= 0.05 * paper
    entry = kerasnets.models.registry.get_entry(name)
    assert depth_of(model) == entry.fixed_kwargs["depth"]
    assert model.input_shape == (None, 32, 32, 3)
    assert model.output_shape == (None, 10)
    # Three blocks at 32x32, 16x16 and 8x8; 16 stem filters, or 2k for DenseNet-BC.
    k = entry.fixed_kwargs["growth_rate"]
    assert model.get_layer("relu").output_shape[1:3] == (8, 8)
    assert model.get_layer("conv1/conv").filters == (2 * k if "_bc_" in name else 16)


def test_cifar_densenet_bc_layers_follow_the_paper():
    model = cifar_model("densenet_bc_100_k12")
    # Bottleneck layers: 1x1 conv to 4k, then 3x3 conv to k.
    assert model.get_layer("conv2_block1_1_conv").filters == 48
    assert model.get_layer("conv2_block1_1_conv").kernel_size == (1, 1)
    assert model.get_layer("conv2_block16_2_conv").filters == 12
    assert model.get_layer("conv2_block16_2_conv").kernel_size == (3, 3)
    # 24 + 16 * 12 = 216 maps, compressed by theta = 0.5 to 108.
    assert model.get_layer("conv2_block16_concat").output_shape[-1] == 216
    assert model.get_layer("pool2_conv").filters == 108
    assert not any(isinstance(layer, tf_keras.layers.MaxPooling2D) for layer in model.layers)
    # BatchNorm of the paper's Torch code (momentum 0.1 there, 1 - 0.1 in Keras; eps 1e-5).
    bn = model.get_layer("conv2_block1_0_bn")
    assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)


def test_cifar_profile_counts_every_conv():
    model = cifar_model("densenet_40_k12")
    result = kerasnets.profile(model)
    assert result.params == model.count_params()
    # The first dense layer's 3x3 conv: 32 * 32 positions * 9 * 16 inputs * 12 outputs.
    assert result.layers[[r.name for r in result.layers].index("conv2_block1_1_conv")].macs \
        == 32 * 32 * 9 * 16 * 12
    assert 0.2e9 < result.macs < 0.4e9


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_cifar_model_save_and_load_round_trip(fmt, tmp_path, real_images):
    model = kerasnets.DenseNetCifar(depth=22, growth_rate=6, bottleneck=True, compression=0.5,
                                    classes=4, dropout_rate=0.2, include_preprocessing=True)
    randomize_batchnorm(model)
    path = tmp_path / f"densenet.{fmt}"
    model.save(str(path))
    loaded = tf_keras.models.load_model(str(path), custom_objects=custom_objects())
    x = real_images[:8]
    np.testing.assert_array_equal(outputs(loaded, x), outputs(model, x))
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    # Dropout after both convs of the 3 x 3 bottleneck layers and after the 2 transitions.
    dropouts = [layer for layer in model.layers if isinstance(layer, tf_keras.layers.Dropout)]
    assert len(dropouts) == 3 * 3 * 2 + 2


def test_registry_names():
    names = kerasnets.list_models("densenet*")
    for name in ("densenet121", "densenet169", "densenet201", "densenet264", "densenet_40_k12",
                 "densenet_bc_100_k12", "densenet_bc_250_k24", "densenet_bc_190_k40"):
        assert name in names


# ------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("kwargs, match", [
    (dict(depth=101), r"`depth` must be 6n \+ 4.*depth=101"),
    (dict(depth=102), r"`depth` must be 6n \+ 4.*e.g. 100, 190, 250.*depth=102"),
    (dict(depth=41, bottleneck=False, compression=1.0), r"`depth` must be 3n \+ 4.*depth=41"),
    (dict(depth=4), r"`depth`.*depth=4"),
    (dict(depth=100.0), r"`depth`.*depth=100.0"),
    (dict(growth_rate=0), r"`growth_rate` must be a positive integer.*growth_rate=0"),
    (dict(growth_rate=-12), r"`growth_rate`.*growth_rate=-12"),
    (dict(growth_rate=12.5), r"`growth_rate`.*growth_rate=12.5"),
    (dict(compression=0), r"`compression`.*\(0, 1\].*compression=0"),
    (dict(compression=1.5), r"`compression`.*\(0, 1\].*compression=1.5"),
    (dict(compression=-0.5), r"`compression`.*compression=-0.5"),
    (dict(bottleneck="yes"), r"`bottleneck` must be True or False"),
    (dict(dropout_rate=1.0), r"`dropout_rate`"),
    (dict(input_shape=(2, 2, 3)), r"`input_shape`.*at least 4"),
])
def test_cifar_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kerasnets.DenseNetCifar(**kwargs)


@pytest.mark.parametrize("blocks", [[], [6, 0, 24, 16], [6, -1], [6, 12.5], "6,12,24,16", None,
                                    [6, True], 121])
def test_densenet_bad_blocks_raise(blocks):
    with pytest.raises(ValueError, match=r"`blocks` must be a non-empty list of positive "
                                         r"integers.*received blocks="):
        kerasnets.DenseNet(blocks)


@pytest.mark.parametrize("kwargs, match", [
    (dict(growth_rate=0), r"`growth_rate`.*growth_rate=0"),
    (dict(compression=0.0), r"`compression`.*\(0, 1\]"),
    (dict(compression=0.01), r"`compression`=0.01 leaves no feature map"),
    (dict(input_shape=(16, 16, 3)), r"`input_shape`.*at least 32"),
    (dict(weights="imagenet"), r"never downloads"),
])
def test_densenet_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kerasnets.DenseNet([1, 1, 1, 1], **kwargs)
