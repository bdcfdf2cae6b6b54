"""GoogLeNet against the paper (Szegedy et al., 2015, Table 1 and section 5) and torchvision."""

import numpy as np
import pytest

import kerasnets
from kerasnets._keras import layers

# Table 1 of the paper, typed again here: Inception rows as (input depth, #1x1, #3x3 reduce,
# #3x3, #5x5 reduce, #5x5, pool proj, output depth, params column in K).
INCEPTION_ROWS = {
    "inception_3a": (192, 64, 96, 128, 16, 32, 32, 256, 159),
    "inception_3b": (256, 128, 128, 192, 32, 96, 64, 480, 380),
    "inception_4a": (480, 192, 96, 208, 16, 48, 64, 512, 364),
    "inception_4b": (512, 160, 112, 224, 24, 64, 64, 512, 437),
    "inception_4c": (512, 128, 128, 256, 24, 64, 64, 512, 463),
    "inception_4d": (512, 112, 144, 288, 32, 64, 64, 528, 580),
    "inception_4e": (528, 256, 160, 320, 32, 128, 128, 832, 840),
    "inception_5a": (832, 256, 160, 320, 32, 128, 128, 832, 1072),
    "inception_5b": (832, 384, 192, 384, 48, 128, 128, 1024, 1388),
}
# The other rows with weights: conv 7x7/2 (3 -> 64, "2.7K"), conv 3x3 with its 1x1 reduce
# (64 -> 64 -> 192, "112K"), linear (1024 -> 1000, "1000K").
STEM_CONV1 = (7 * 7 * 3, 64)
STEM_REDUCE = (64, 64)
STEM_CONV2 = (3 * 3 * 64, 192)
LINEAR = (1024, 1000)
TABLE_PARAMS_K = 2.7 + 112 + sum(row[-1] for row in INCEPTION_ROWS.values()) + 1000
TORCHVISION_PARAMS = 6_624_904  # torchvision.models.googlenet(aux_logits=False), REFERENCE.md


def inception_convs(row, five=5):
    """Returns the (fan_in, filters) of the six convolutions of an Inception row."""
    cin, n1, n3r, n3, n5r, n5, proj = row[:7]
    return [(cin, n1), (cin, n3r), (9 * n3r, n3), (cin, n5r), (five * five * n5r, n5),
            (cin, proj)]


def table_convs(five=5):
    """Returns the (fan_in, filters) of every convolution of Table 1."""
    convs = [STEM_CONV1, STEM_REDUCE, STEM_CONV2]
    for row in INCEPTION_ROWS.values():
        convs += inception_convs(row, five)
    return convs


def test_params_equal_an_independent_count_from_table1():
    model = kerasnets.GoogLeNet(input_shape=(32, 32, 3))
    # Paper mode: every convolution and the linear layer have weights and biases, nothing else.
    expected = sum(fan_in * out + out for fan_in, out in table_convs() + [LINEAR])
    assert model.count_params() == expected == 6_998_552
    assert not any(isinstance(lyr, layers.BatchNormalization) for lyr in model.layers)


def test_weights_agree_with_the_params_column_of_table1():
    # The column counts weights without biases in units of 1024. Its total is 6.8M; row by row
    # it has misprints (conv1 prints 2.7K for 9.4K of weights, 4c and 5a are off by 7% and 5%),
    # so rows are checked loosely and the total closely.
    for name, row in INCEPTION_ROWS.items():
        weights = sum(fan_in * out for fan_in, out in inception_convs(row))
        assert abs(weights / 1024 / row[-1] - 1) < 0.08, name
    weights = sum(fan_in * out for fan_in, out in table_convs() + [LINEAR])
    assert abs(weights / 1024 / TABLE_PARAMS_K - 1) < 0.01


def test_output_depth_and_resolution_follow_table1():
    model = kerasnets.GoogLeNet(input_shape=(224, 224, 3))
    sizes = {"3": 28, "4": 14, "5": 7}
    for name, row in INCEPTION_ROWS.items():
        shape = model.get_layer(name + "/output").output_shape
        size = sizes[name[len("inception_")]]
        assert shape == (None, size, size, row[7]), name
        assert sum(row[i] for i in (1, 3, 5, 6)) == row[7]
    assert model.get_layer("conv2/3x3/relu").output_shape == (None, 56, 56, 192)
    five = [lyr for lyr in model.layers if lyr.name.endswith("/5x5")]
    assert len(five) == 9 and all(lyr.kernel_size == (5, 5) for lyr in five)


def test_batch_norm_variant_differs_from_torchvision_only_by_the_5x5_kernels():
    model = kerasnets.GoogLeNet(input_shape=(32, 32, 3), batch_norm=True)
    convs = table_convs()
    # BatchNorm replaces each conv bias: gamma and beta are trained, the moving mean and
    # variance are not.
    trainable = sum(fan_in * out + 2 * out for fan_in, out in convs) + LINEAR[0] * LINEAR[1] + \
        LINEAR[1]
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable
    assert model.count_params() == trainable + sum(2 * out for _, out in convs)
    # torchvision's GoogLeNet is this network with 3x3 kernels in the 5x5 branches.
    as_3x3 = sum(fan_in * out + 2 * out for fan_in, out in table_convs(five=3)) + \
        LINEAR[0] * LINEAR[1] + LINEAR[1]
    assert as_3x3 == TORCHVISION_PARAMS


def test_auxiliary_classifiers_follow_section_5(real_images):
    plain = kerasnets.GoogLeNet(input_shape=(224, 224, 3), classes=10)
    model = kerasnets.GoogLeNet(input_shape=(224, 224, 3), classes=10, aux_logits=True)
    assert model.output_shape == [(None, 10)] * 3
    # Section 5: 5x5/3 average pool gives 4x4x512 (4a) and 4x4x528 (4d); 1x1 conv 128;
    # fully connected 1024; linear classifier.
    aux = sum(cin * 128 + 128 + 4 * 4 * 128 * 1024 + 1024 + 1024 * 10 + 10 for cin in (512, 528))
    assert model.count_params() == plain.count_params() + aux
    assert model.get_layer("loss1/ave_pool").output_shape == (None, 4, 4, 512)
    assert model.get_layer("loss2/ave_pool").output_shape == (None, 4, 4, 528)
    x = layers.Resizing(224, 224)(real_images[:2])
    main, aux1, aux2 = model(x, training=False)
    np.testing.assert_allclose(np.sum(main, axis=-1), 1.0, rtol=1e-5)
    assert not np.allclose(aux1, aux2)


@pytest.mark.parametrize("kwargs,pattern", [
    ({"aux_logits": True, "include_top": False}, "`aux_logits`=True needs include_top=True"),
    ({"aux_logits": True, "input_shape": (64, 64, 3)}, "at least 65.*input_shape=\\(64, 64, 3\\)"),
    ({"aux_logits": True, "input_shape": (None, None, 3)}, "static rows and cols"),
    ({"aux_logits": "yes"}, "`aux_logits` must be True or False; received aux_logits='yes'"),
    ({"batch_norm": 1}, "`batch_norm` must be True or False; received batch_norm=1"),
    ({"input_shape": (31, 31, 3)}, "at least 32"),
    ({"dropout_rate": 1.0}, "`dropout_rate` must be"),
    ({"classes": -3}, "`classes` must be a positive integer"),
])
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        kerasnets.GoogLeNet(**kwargs)
