"""VGG-16/19 (Simonyan & Zisserman 2015), AlexNet (torchvision's single-tower form of
Krizhevsky et al. 2012) and ZFNet (Zeiler & Fergus 2014) against their papers' numbers."""

import pytest
import tf_keras

import kerasnets
from kerasnets._keras import layers

# Parameters at 224x224 with 1000 classes: VGG Table 2 rounds them to 138M and 144M; the exact
# counts are keras.applications' (its docs) and torchvision's AlexNet (its docs: 61,100,840).
PAPER_PARAMS = {"vgg16": 138_357_544, "vgg19": 143_667_240, "alexnet": 61_100_840}
# Mult-adds at 224x224: VGG-16 15,300M and AlexNet 720M (MobileNet paper, Howard et al. 2017,
# Tables 8 and 9), VGG-19 19.6G "FLOPs (multiply-adds)" (ResNet paper, He et al. 2016, sec. 3.3).
PAPER_MACS = {"vgg16": 15.3e9, "vgg19": 19.6e9, "alexnet": 720e6}

# ZFNet, Zeiler & Fergus Figure 3: (filters, kernel, output size at 224) of layers 1-5, then
# fc6, fc7 of 4096 and the 1000-way classifier on the 6x6x256 map of pool5.
ZF_FIG3 = [(96, 7, 110), (256, 5, 26), (384, 3, 13), (384, 3, 13), (256, 3, 13)]


def zfnet_counts():
    """Returns ZFNet's (params, MACs) at 224x224, counted from Figure 3 alone."""
    params = macs = 0
    channels = 3
    for filters, kernel, size in ZF_FIG3:
        params += kernel * kernel * channels * filters + filters
        macs += size * size * kernel * kernel * channels * filters
        channels = filters
    for n_in, n_out in ((6 * 6 * 256, 4096), (4096, 4096), (4096, 1000)):
        params += n_in * n_out + n_out
        macs += n_in * n_out
    return params, macs


@pytest.mark.parametrize("name", ["vgg16", "vgg19", "alexnet", "zfnet"])
def test_params_and_macs_at_224_match_the_papers(name):
    model = kerasnets.create_model(name)
    assert model.input_shape == (None, 224, 224, 3) and model.output_shape == (None, 1000)
    macs = kerasnets.profile(model).macs
    if name == "zfnet":
        assert (model.count_params(), macs) == zfnet_counts()
    else:
        assert model.count_params() == PAPER_PARAMS[name]
        # Our counts: VGG-16 15.47G, VGG-19 19.63G, AlexNet 714M (the two-tower original: 725M).
        assert abs(macs / PAPER_MACS[name] - 1) < 0.02


def test_feature_map_sizes_follow_torchvision_and_figure_3():
    def sizes(model):
        return [lyr.output_shape[1] for lyr in model.layers
                if isinstance(lyr, (layers.Conv2D, layers.MaxPooling2D))]

    # torchvision AlexNet at 224: conv1 55, pool1 27, conv2 27, pool2 13, conv3-5 13, pool5 6.
    assert sizes(kerasnets.AlexNet(include_top=False)) == [55, 27, 27, 13, 13, 13, 13, 6]
    # Zeiler & Fergus Fig. 3: 110, 55, 26, 13, 13, 13, 13, 6.
    zf = kerasnets.ZFNet(include_top=False)
    assert sizes(zf) == [110, 55, 26, 13, 13, 13, 13, 6]
    assert zf.get_layer("conv1").kernel_size == (7, 7) and zf.get_layer("conv1").strides == (2, 2)


@pytest.mark.parametrize("name,layer_names", [
    ("vgg16", ["block1_conv1", "block5_conv3", "block5_pool", "flatten", "fc1", "fc2",
               "predictions"]),
    ("vgg19", ["block3_conv4", "block5_conv4", "fc1", "predictions"]),
])
def test_vgg_layer_names_are_keras_applications(name, layer_names):
    ours = kerasnets.create_model(name, input_shape=(32, 32, 3), classes=10)
    builder = getattr(tf_keras.applications, name.upper())
    theirs = builder(weights=None, input_shape=(32, 32, 3), classes=10)
    # The input layers' names are numbered per session; every other name is keras.applications'.
    assert [lyr.name for lyr in ours.layers][1:] == [lyr.name for lyr in theirs.layers][1:]
    assert set(layer_names) <= {lyr.name for lyr in ours.layers}


def test_dropout_is_the_papers_for_alexnet_and_off_for_vgg():
    alexnet = kerasnets.AlexNet(input_shape=(63, 63, 3), classes=10)
    drops = [lyr for lyr in alexnet.layers if isinstance(lyr, layers.Dropout)]
    assert [(d.name, d.rate) for d in drops] == [("fc6_dropout", 0.5), ("fc7_dropout", 0.5)]
    vgg = kerasnets.VGG16(input_shape=(32, 32, 3), classes=10, dropout_rate=0.5)
    assert [lyr.name for lyr in vgg.layers if isinstance(lyr, layers.Dropout)] == \
        ["fc1_dropout", "fc2_dropout"]


@pytest.mark.parametrize("builder,kwargs,pattern", [
    (kerasnets.AlexNet, {"input_shape": (62, 62, 3)}, "at least 63"),
    (kerasnets.ZFNet, {"input_shape": (52, 52, 3)}, "at least 53"),
    (kerasnets.VGG16, {"input_shape": (None, None, 3)}, "static rows and cols"),
    (kerasnets.ZFNet, {"pooling": "sum", "include_top": False}, "`pooling` must be one of"),
])
def test_bad_arguments(builder, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        builder(**kwargs)


def test_headless_models_take_any_size_above_the_minimum():
    model = kerasnets.AlexNet(input_shape=(None, None, 3), include_top=False, pooling="avg")
    assert model.output_shape == (None, 256)
