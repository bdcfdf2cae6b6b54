"""QAT as transfer learning uses it: frozen layers, nested backbones, saved QAT models.

Expected values come from Keras itself (the float model's trainable weights, its outputs, its
weights before training) and from the TFLite converter (the int8 bytes of the model before
saving); kerasnets.quantization must keep them through QAT, flattening and saving.
"""

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
from helpers import randomize_batchnorm

import kerasnets
from kerasnets._keras import keras, layers
from kerasnets.export.convert import convert
from kerasnets.layers import HardSwish
from kerasnets.models.graph import inline_submodels
from kerasnets.quantization import quantize_model, quantize_scope

# The float weights a QAT wrapper keeps (its other variables are quantizer ranges and steps).
FLOAT_WEIGHTS = ("kernel", "depthwise_kernel", "bias", "gamma", "beta", "moving_mean",
                 "moving_variance")


def short_name(variable):
    return variable.name.rsplit("/", 1)[-1].split(":")[0]


def float_weights(qat, name):
    """Returns ``{weight name: value}`` of the float weights of layer ``name`` in a QAT model."""
    layer = qat.get_layer(f"quant_{name}")
    return {short_name(v): v.numpy() for v in layer.weights if short_name(v) in FLOAT_WEIGHTS}


def one_sgd_epoch(model, images, classes=2, batch_size=4):
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    labels = np.arange(len(images)) % classes
    model.fit(images, labels, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)


def frozen_conv_model():
    """The issue's model: a frozen conv (here with its frozen BN) under a trainable head."""
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, name="frozen_conv", trainable=False)(inputs)
    x = layers.BatchNormalization(name="frozen_bn", trainable=False)(x)
    x = HardSwish(name="hswish")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(2, activation="softmax", name="head")(x)
    return keras.Model(inputs, x, name="frozen_conv_model")


@pytest.fixture(scope="module")
def small_images():
    return np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 3)).astype("float32")


# --- issue 13 item 2: frozen layers stay frozen -------------------------------------------


def test_frozen_layer_stays_frozen_and_its_ranges_calibrate(small_images):
    model = frozen_conv_model()
    qat = quantize_model(model)
    # tfmot listed the frozen kernel as trainable: 3 trainable weights against Keras's 2.
    assert len(qat.trainable_weights) == len(model.trainable_weights) == 2
    frozen = {name: float_weights(qat, name) for name in ("frozen_conv", "frozen_bn")}
    ranges = {short_name(v): v.numpy() for v in qat.get_layer("quant_frozen_bn").weights
              if short_name(v) not in FLOAT_WEIGHTS}
    head = float_weights(qat, "head")

    one_sgd_epoch(qat, small_images)
    for name, weights in frozen.items():
        for key, value in float_weights(qat, name).items():
            np.testing.assert_array_equal(value, weights[key], err_msg=f"{name}/{key}")
    assert not np.array_equal(float_weights(qat, "head")["kernel"], head["kernel"])
    # The frozen BN's output range is calibrated (a moving average of the batch min/max, not
    # an optimizer update): the int8 model needs it, frozen or not.
    after = {short_name(v): v.numpy() for v in qat.get_layer("quant_frozen_bn").weights}
    assert after["output_min"] != ranges["output_min"]


def test_every_layer_trainable_gives_the_float_models_trainable_weights():
    model = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(4, 3),
                              layers.BatchNormalization(), layers.ReLU(),
                              layers.DepthwiseConv2D(3), HardSwish(), layers.Flatten(),
                              layers.Dense(2)])
    qat = quantize_model(model)
    assert len(qat.trainable_weights) == len(model.trainable_weights) == 8


def test_freezing_a_qat_layer_freezes_its_weights(small_images):
    qat = quantize_model(frozen_conv_model())
    qat.get_layer("quant_head").trainable = False
    assert qat.trainable_weights == []
    head = float_weights(qat, "head")
    qat.compile(keras.optimizers.SGD(0.1), "mse")
    qat.fit(small_images, np.ones((len(small_images), 2)), verbose=0)
    np.testing.assert_array_equal(float_weights(qat, "head")["kernel"], head["kernel"])


# --- issue 13 item 3: QAT models save and load in every format ----------------------------


@pytest.fixture(scope="module")
def trained_qat(small_images):
    """A trained QAT model with a frozen layer and its int8 TFLite bytes."""
    qat = quantize_model(frozen_conv_model())
    one_sgd_epoch(qat, small_images)
    return qat, convert(qat, "int8", small_images)


@pytest.mark.parametrize("filename", ["qat.keras", "qat.h5", "qat_savedmodel"])
def test_qat_model_round_trips(tmp_path, trained_qat, small_images, filename):
    qat, int8_bytes = trained_qat
    qat.save(tmp_path / filename)
    with quantize_scope():
        loaded = keras.models.load_model(tmp_path / filename)
    np.testing.assert_array_equal(loaded.predict(small_images, verbose=0),
                                  qat.predict(small_images, verbose=0))
    assert len(loaded.trainable_weights) == len(qat.trainable_weights) == 2
    assert convert(loaded, "int8", small_images) == int8_bytes


def test_tfmot_qat_files_load_with_frozen_layers_frozen(tmp_path, small_images):
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, trainable=False)(inputs)
    model = keras.Model(inputs, layers.Dense(2)(layers.Flatten()(x)))
    tfmot_qat = tfmot.quantization.keras.quantize_model(model)
    for filename in ("tfmot.keras", "tfmot.h5"):
        tfmot_qat.save(tmp_path / filename)
        with quantize_scope():
            loaded = keras.models.load_model(tmp_path / filename)
        np.testing.assert_array_equal(loaded.predict(small_images, verbose=0),
                                      tfmot_qat.predict(small_images, verbose=0))
        assert len(loaded.trainable_weights) == len(model.trainable_weights) == 2


# --- issue 13 item 5: nested sub-models are flattened -------------------------------------


def nested_model(backbone_trainable=True, training=None):
    """A head on two calls of one functional backbone, itself holding a nested block."""
    block_in = keras.Input((6, 6, 4))
    block = keras.Model(block_in, layers.ReLU(name="relu")(
        layers.BatchNormalization(name="bn")(layers.Conv2D(4, 1, name="conv")(block_in))),
        name="block")
    base_in = keras.Input((8, 8, 3))
    y = layers.Conv2D(4, 3, name="conv")(base_in)  # the same name as the block's conv
    base = keras.Model(base_in, block(y), name="base")
    base.trainable = backbone_trainable
    inputs = keras.Input((8, 8, 3), name="image")
    kwargs = {} if training is None else {"training": training}
    x = layers.Add(name="add")([base(inputs, **kwargs), base(inputs, **kwargs)])
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, layers.Dense(2, name="head")(x), name="classifier")


def test_nested_models_are_flattened_with_weights_and_outputs_kept(small_images):
    model = nested_model()
    for layer in model.get_layer("base").layers + model.get_layer("base").get_layer("block").layers:
        if layer.weights:  # non-trivial BN statistics, so they must be copied to match
            layer.set_weights([np.random.default_rng(1).uniform(0.5, 1.5, w.shape)
                               for w in layer.get_weights()])
    flat = inline_submodels(model)
    assert not any(isinstance(layer, keras.Model) for layer in flat.layers)
    # The shared backbone stays shared; the block's "conv" is renamed, the outer names kept.
    assert [layer.name for layer in flat.layers] == [
        "image", "conv", "block_conv", "bn", "relu", "add", "flatten", "head"]
    np.testing.assert_array_equal(flat.predict(small_images, verbose=0),
                                  model.predict(small_images, verbose=0))
    assert len(flat.trainable_weights) == len(model.trainable_weights)
    assert len(model.get_layer("base").get_layer("conv").inbound_nodes) == 1  # untouched

    qat = quantize_model(model)
    assert qat.output_shape == (None, 2)
    assert not any(isinstance(getattr(layer, "layer", layer), keras.Model) for layer in qat.layers)


def test_frozen_nested_model_stays_frozen_after_flattening():
    model = nested_model(backbone_trainable=False, training=False)
    assert len(inline_submodels(model).trainable_weights) == len(model.trainable_weights) == 2
    assert len(quantize_model(model).trainable_weights) == 2


def test_training_false_reaches_the_inlined_layers(small_images):
    inner_in = keras.Input((8, 8, 3))
    inner = keras.Model(inner_in, layers.Dropout(0.9)(layers.Conv2D(4, 3)(inner_in)), name="inner")
    inputs = keras.Input((8, 8, 3))
    qat = quantize_model(keras.Model(inputs, layers.Flatten()(inner(inputs, training=False))))
    np.testing.assert_allclose(qat(small_images, training=True).numpy(),
                               qat(small_images, training=False).numpy(), atol=1e-6)


def test_nested_models_that_cannot_be_flattened_name_the_route():
    class Subclassed(keras.Model):
        def call(self, x):
            return x

    inputs = keras.Input((8, 8, 3))
    with pytest.raises(ValueError, match=r"'subclassed'.*input_tensor="):
        quantize_model(keras.Model(inputs, Subclassed()(inputs)))
    # A trainable BN in a sub-model called with training=False: Keras's own route is freezing.
    with pytest.raises(ValueError, match=r"'bn' is trainable.*trainable = False"):
        quantize_model(nested_model(backbone_trainable=True, training=False))


@pytest.mark.slow
def test_transfer_learning_frozen_mobilenet_v2_backbone_end_to_end():
    # Wide BN offsets: a fresh random backbone's features would round to zero in int8.
    base = randomize_batchnorm(kerasnets.MobileNetV2((32, 32, 3), include_top=False, alpha=0.35),
                               spread=1.0)
    base.trainable = False
    inputs = keras.Input((32, 32, 3))
    x = base(inputs, training=False)  # the Keras transfer-learning guide's form
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, layers.Dense(2, activation="softmax", name="head")(x))
    images = np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(inline_submodels(model).predict(images, verbose=0),
                                  model.predict(images, verbose=0))

    qat = quantize_model(model)
    assert len(qat.trainable_weights) == len(model.trainable_weights) == 2
    head = float_weights(qat, "head")["kernel"]
    one_sgd_epoch(qat, images)
    backbone = [layer for layer in base.layers if layer.weights]
    assert len(backbone) > 50
    for layer in backbone:
        expected = {short_name(v): v.numpy() for v in layer.weights}
        got = float_weights(qat, layer.name)
        assert got.keys() == expected.keys(), layer.name
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{layer.name}/{key}")
    assert not np.array_equal(float_weights(qat, "head")["kernel"], head)
