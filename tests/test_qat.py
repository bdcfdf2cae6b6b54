"""kerasnets.quantization.qat (quantization-aware training) and kerasnets.export.int8_forms (XNNPACK-friendly int8).

References are independent of our code: tfmot's own quantize_model (which fails on these models),
the TFLite converter and LiteRT's Interpreter (int8 kernels, XNNPACK partitions), and float
Keras/NumPy arithmetic.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_optimization as tfmot

from kerasnets._keras import keras, layers
from kerasnets.export.int8_forms import postprocess_tflite
from kerasnets.export.interpreter import (
    inner_tensor_dtypes, tflite_op_names, undelegated_ops, xnnpack_partitions,
)
from kerasnets.layers import HardSigmoid, HardSwish, StochasticDepth
from kerasnets.quantization.qat import OutputQuantizeConfig, quantize_model, quantize_scope


def v3_block(classes=10):
    """A MobileNetV3-style network: preprocessing, hard-swish, SE, residual, V3 head."""
    inputs = keras.Input((32, 32, 3))
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="rescaling")(inputs)
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="stem")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = HardSwish(name="stem_hswish")(x)
    shortcut = x
    x = layers.Conv2D(48, 1, use_bias=False, name="expand")(x)
    x = layers.BatchNormalization(name="expand_bn")(x)
    x = HardSwish(name="expand_hswish")(x)
    x = layers.DepthwiseConv2D(5, padding="same", use_bias=False, name="depthwise")(x)
    x = layers.BatchNormalization(name="depthwise_bn")(x)
    x = HardSwish(name="depthwise_hswish")(x)
    s = layers.GlobalAveragePooling2D(keepdims=True, name="se_pool")(x)
    s = layers.Conv2D(12, 1, name="se_reduce")(s)
    s = layers.ReLU(name="se_relu")(s)
    s = layers.Conv2D(48, 1, name="se_expand")(s)
    s = HardSigmoid(name="se_hsigmoid")(s)
    x = layers.Multiply(name="se_mul")([x, s])
    x = layers.Conv2D(16, 1, use_bias=False, name="project")(x)
    x = layers.BatchNormalization(name="project_bn")(x)
    x = StochasticDepth(0.1, name="drop_path")(x)
    x = layers.Add(name="add")([shortcut, x])
    x = layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
    x = layers.Conv2D(64, 1, name="head")(x)
    x = HardSwish(name="head_hswish")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    x = layers.Conv2D(classes, 1, name="logits")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Activation("softmax", name="predictions")(x)
    return keras.Model(inputs, x, name="v3_block")


def dense_block(classes=10):
    """A DenseNet-style network: stem, two pre-activation dense layers, transition, head."""
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.ZeroPadding2D(1, name="stem_pad")(x)
    x = layers.MaxPooling2D(3, 2, name="stem_pool")(x)
    for i in (1, 2):
        y = layers.BatchNormalization(name=f"layer{i}_0_bn")(x)
        y = layers.ReLU(name=f"layer{i}_0_relu")(y)
        y = layers.Conv2D(32, 1, use_bias=False, name=f"layer{i}_1_conv")(y)
        y = layers.BatchNormalization(name=f"layer{i}_1_bn")(y)
        y = layers.ReLU(name=f"layer{i}_1_relu")(y)
        y = layers.Conv2D(8, 3, padding="same", use_bias=False, name=f"layer{i}_2_conv")(y)
        x = layers.Concatenate(name=f"layer{i}_concat")([x, y])
    x = layers.BatchNormalization(name="transition_bn")(x)
    x = layers.ReLU(name="transition_relu")(x)
    x = layers.Conv2D(16, 1, use_bias=False, name="transition_conv")(x)
    x = layers.AveragePooling2D(2, strides=2, name="transition_pool")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU(name="relu")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name="dense_block")


@pytest.fixture(scope="module")
def images(request):
    """Returns 20 real CIFAR-10 images in [0, 255] when ../shared is present, else random ones."""
    try:
        return request.getfixturevalue("real_images")
    except pytest.skip.Exception:
        return np.random.default_rng(0).uniform(0, 255, (20, 32, 32, 3)).astype("float32")


def convert_int8(model, samples):
    """Returns TFLiteConverter's full-int8 model (float I/O) calibrated on ``samples``."""
    # Converting a concrete function skips tracing every Keras layer for a SavedModel.
    spec = tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32)
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    holder = tf.Module()
    holder.model_variables = list(model.variables)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], holder)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s[None]] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def run_tflite(tflite_model, inputs):
    """Returns the LiteRT outputs of ``tflite_model`` for each input (default XNNPACK)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite_model)
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    outputs = []
    for x in inputs:
        interpreter.set_tensor(source["index"], x[None].astype(source["dtype"]))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target["index"])[0])
    return np.stack(outputs)


def train_one_step(model, images):
    model.compile(keras.optimizers.SGD(1e-3), "sparse_categorical_crossentropy")
    labels = np.arange(len(images)) % 10
    return model.fit(images, labels, batch_size=len(images), epochs=1, verbose=0)


def assert_full_int8(tflite_model):
    inner = inner_tensor_dtypes(tflite_model)
    assert inner, "no tensors between the graph entry and exit"
    others = {name: str(dtype) for name, dtype in inner.items()
              if dtype not in (np.dtype("int8"), np.dtype("int32"))}
    assert not others, f"tensors that are neither int8 nor int32: {others}"


# --- quantize_model on kerasnets-layer models --------------------------------------------


@pytest.mark.slow
def test_v3_block_qat_trains_and_converts_to_one_xnnpack_partition(images):
    # Seeded: an untrained model's classes are near ties, so which ones the two int8 forms
    # pick depends on the initial weights (unseeded, 2 runs in 5 agreed on 7 images of 10).
    keras.utils.set_random_seed(0)
    model = v3_block()
    qat = quantize_model(model)
    history = train_one_step(qat, images)
    assert np.isfinite(history.history["loss"][0])

    converted = convert_int8(qat, images)
    xnnpack = postprocess_tflite(converted)
    fused = postprocess_tflite(converted, hard_swish="fused")
    assert_full_int8(xnnpack)
    assert_full_int8(fused)
    # The converter fuses the quantized HardSwish layers; the fused form keeps the op ...
    assert tflite_op_names(fused).count("HARD_SWISH") == 4
    assert undelegated_ops(fused) == ["HARD_SWISH"] * 4
    assert xnnpack_partitions(fused) > 1
    # ... the default form runs as one XNNPACK partition without it.
    assert "HARD_SWISH" not in tflite_op_names(xnnpack)
    assert xnnpack_partitions(xnnpack) == 1 and undelegated_ops(xnnpack) == []

    keras_out = qat.predict(images, verbose=0)
    out_xnnpack, out_fused = run_tflite(xnnpack, images), run_tflite(fused, images)
    # int8 against the QAT model's own simulation of it, and the two forms against each other.
    assert np.abs(out_xnnpack - keras_out).max() < 0.05
    assert np.abs(out_xnnpack - out_fused).max() < 0.02
    assert np.mean(out_xnnpack.argmax(1) == out_fused.argmax(1)) >= 0.8


@pytest.mark.slow
def test_dense_block_qat_trains_and_converts_to_one_xnnpack_partition(images):
    qat = quantize_model(dense_block())
    train_one_step(qat, images)
    converted = convert_int8(qat, images)
    # As converted, int8 AVERAGE_POOL_2D and SOFTMAX each leave XNNPACK (and, depending on the
    # images, the ADD of a BatchNorm whose offset is still near zero).
    assert {"AVERAGE_POOL_2D", "SOFTMAX"} <= set(undelegated_ops(converted))
    rewritten = postprocess_tflite(converted)
    assert_full_int8(rewritten)
    assert "AVERAGE_POOL_2D" not in tflite_op_names(rewritten)
    assert xnnpack_partitions(rewritten) == 1 and undelegated_ops(rewritten) == []
    keras_out = qat.predict(images, verbose=0)
    assert np.abs(run_tflite(rewritten, images) - keras_out).max() < 0.05


def test_quantize_model_keeps_tfmot_folding_and_covers_every_layer():
    qat = quantize_model(v3_block())
    wrapped = {l.layer.name: l for l in qat.layers
               if isinstance(l, tfmot.quantization.keras.QuantizeWrapperV2)}
    # tfmot folds Conv-BN: the conv output is not quantized (a no-op activation) and the BN's is.
    assert type(wrapped["expand"].layer.activation.activation).__name__ == "NoOpActivation"
    assert wrapped["head"].layer.activation.activation.__name__ == "linear"  # conv without BN
    assert wrapped["expand_bn"].quantize_config.get_output_quantizers(wrapped["expand_bn"].layer)
    for name in ("stem_hswish", "se_hsigmoid", "se_mul", "rescaling", "head_hswish"):
        config = wrapped[name].quantize_config
        assert config.get_output_quantizers(wrapped[name].layer), name
    assert not wrapped["drop_path"].quantize_config.get_output_quantizers(None)

    dense = quantize_model(dense_block())
    wrapped = {l.layer.name: l for l in dense.layers
               if isinstance(l, tfmot.quantization.keras.QuantizeWrapperV2)}
    # Pre-activation BN after Concatenate: quantized after its ReLU, which TFLite fuses.
    assert not wrapped["layer2_0_bn"].quantize_config.get_output_quantizers(None)
    # BN after pooling with its ReLU; BN after a conv is folded by tfmot.
    assert not wrapped["bn"].quantize_config.get_output_quantizers(None)
    # int8 AVERAGE_POOL_2D keeps its input's scale: no second range.
    assert not wrapped["transition_pool"].quantize_config.get_output_quantizers(None)
    assert type(wrapped["layer1_1_conv"].layer.activation.activation).__name__ == "NoOpActivation"


def test_tfmot_alone_fails_on_the_same_models():
    quantize = tfmot.quantization.keras.quantize_model
    # It stops at the first layer it has no rule for: Rescaling here (then HardSwish, ...).
    with pytest.raises(RuntimeError, match=r"rescaling:.*Rescaling'> is not supported"):
        quantize(v3_block())
    # BatchNormalization that does not follow a convolution (DenseNet's pre-activation BN).
    with pytest.raises(RuntimeError, match=r"layer1_0_bn:.*BatchNormalization'> is not supported"):
        quantize(dense_block())


def test_quantize_scope_loads_a_saved_qat_model(tmp_path, images):
    qat = quantize_model(v3_block())
    path = tmp_path / "qat.h5"
    qat.save(path)
    with quantize_scope():
        loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(images[:4], verbose=0),
                               qat.predict(images[:4], verbose=0), atol=1e-6)


def test_quantize_model_works_on_sequential():
    model = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(4, 3), HardSwish(),
                              layers.Flatten(), layers.Dense(2)])
    qat = quantize_model(model)
    assert qat.output_shape == (None, 2)


# --- clear errors -------------------------------------------------------------------------


def test_unsupported_layer_names_layer_type_and_fix():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3)(inputs)
    x = layers.LayerNormalization(name="norm")(x)
    with pytest.raises(ValueError, match=r"'norm'.*LayerNormalization.*quantize_configs"):
        quantize_model(keras.Model(inputs, x))


def test_unsupported_activation_and_raw_tf_ops_are_named():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, activation="elu", name="elu_conv")(inputs)
    with pytest.raises(ValueError, match=r"'elu_conv'.*Conv2D.*'elu'"):
        quantize_model(keras.Model(inputs, x))
    # keras.applications writes hard-swish as raw TF ops: TFOpLambda layers.
    x = layers.Conv2D(4, 3)(inputs)
    x = x * tf.nn.relu6(x + 3.0)
    with pytest.raises(ValueError, match=r"TFOpLambda"):
        quantize_model(keras.Model(inputs, x))


def test_quantize_configs_override_for_an_unsupported_layer():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, layers.LayerNormalization(name="norm")(layers.Conv2D(4, 3)(inputs)))
    qat = quantize_model(model, quantize_configs={"norm": OutputQuantizeConfig()})
    (norm,) = [l for l in qat.layers if getattr(getattr(l, "layer", None), "name", "") == "norm"]
    assert isinstance(norm.quantize_config, OutputQuantizeConfig)
    with pytest.raises(ValueError, match="quantize_configs"):
        quantize_model(model, quantize_configs={"norm": "output"})


def test_subclassed_model_is_refused():
    class Net(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="subclassed"):
        quantize_model(Net())


def test_postprocess_rejects_unknown_hard_swish_form():
    with pytest.raises(ValueError, match=r"hard_swish.*'xnnpack', 'fused'.*'swish'"):
        postprocess_tflite(b"", hard_swish="swish")


# --- postprocess_tflite: each rewrite against the converter's own int8 kernel ---------------


def _one_op_model(layer, shape, low, high, seed=0):
    inputs = keras.Input(shape)
    model = keras.Model(inputs, layer(inputs))
    samples = np.random.default_rng(seed).uniform(low, high, (16,) + shape).astype("float32")
    return model, samples


def _input_grid(tflite_model, shape):
    """Returns every int8 value of the model's quantized input (dequantized), in ``shape``."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite_model)
    interpreter.allocate_tensors()
    quantize = interpreter._get_ops_details()[0]
    assert quantize["op_name"] == "QUANTIZE"
    scale, zero = interpreter._get_tensor_details(quantize["outputs"][0], 0)["quantization"]
    grid = scale * (np.arange(-128, 128) - zero)
    return np.resize(grid, (int(np.prod(shape)),)).reshape(shape).astype("float32")


def test_hard_swish_rewrite_matches_the_fused_kernel_and_the_float_function():
    model, samples = _one_op_model(HardSwish(), (8, 8, 4), -8.0, 8.0)
    converted = convert_int8(model, samples)
    assert "HARD_SWISH" in tflite_op_names(converted)
    assert undelegated_ops(converted) == ["HARD_SWISH"]
    rewritten = postprocess_tflite(converted)
    assert "HARD_SWISH" not in tflite_op_names(rewritten)
    assert tflite_op_names(rewritten).count("MUL") == 2
    assert xnnpack_partitions(rewritten) == 1 and undelegated_ops(rewritten) == []
    # Inputs on the int8 grid, so only the op itself and the output rounding make errors.
    grid = _input_grid(converted, (4, 8, 8, 4))
    truth = grid * np.clip(grid + 3, 0, 6) / 6
    fused, ours = run_tflite(converted, grid), run_tflite(rewritten, grid)
    step = (truth.max() - truth.min()) / 255  # one int8 step of the output
    assert np.abs(fused - truth).max() <= 1.01 * step
    assert np.abs(ours - truth).max() <= 1.01 * step
    assert np.mean(np.abs(ours - truth)) <= np.mean(np.abs(fused - truth)) + 0.1 * step


def test_hard_swish_rewrite_of_a_tiny_range_is_x_over_2():
    # Random-weight networks shrink activations to ~1e-7; relu6(x + 3) is then exactly 3.
    model, samples = _one_op_model(HardSwish(), (4, 4, 2), -1e-4, 1e-4)
    rewritten = postprocess_tflite(convert_int8(model, samples))
    assert tflite_op_names(rewritten).count("MUL") == 1
    assert "ADD" not in tflite_op_names(rewritten)
    assert xnnpack_partitions(rewritten) == 1 and undelegated_ops(rewritten) == []
    np.testing.assert_allclose(run_tflite(rewritten, samples), samples / 2, atol=2e-6)


def test_hard_swish_rewrite_of_a_huge_range_stays_in_xnnpack():
    model, samples = _one_op_model(HardSwish(), (4, 4, 2), -2000.0, 2000.0)
    converted = convert_int8(model, samples)
    rewritten = postprocess_tflite(converted)
    assert xnnpack_partitions(rewritten) == 1 and undelegated_ops(rewritten) == []
    grid = _input_grid(converted, (8, 4, 4, 2))
    truth = grid * np.clip(grid + 3, 0, 6) / 6
    step = (truth.max() - truth.min()) / 255
    assert np.abs(run_tflite(rewritten, grid) - truth).max() <= 1.01 * step


def test_average_pool_rewrite_equals_the_int8_average_pool():
    model, samples = _one_op_model(layers.AveragePooling2D(2), (8, 8, 6), -3.0, 3.0)
    converted = convert_int8(model, samples)
    rewritten = postprocess_tflite(converted)
    assert "AVERAGE_POOL_2D" not in tflite_op_names(rewritten)
    assert "DEPTHWISE_CONV_2D" in tflite_op_names(rewritten)
    assert undelegated_ops(converted) == ["AVERAGE_POOL_2D"]
    assert xnnpack_partitions(rewritten) == 1 and undelegated_ops(rewritten) == []
    truth = model.predict(samples, verbose=0)
    ours, theirs = run_tflite(rewritten, samples), run_tflite(converted, samples)
    step = 6.0 / 255
    assert np.abs(ours - theirs).max() <= step + 1e-6
    assert np.abs(ours - truth).max() <= 1.5 * step


def test_same_padded_average_pool_that_pads_is_left_alone():
    model, samples = _one_op_model(layers.AveragePooling2D(3, 2, padding="same"), (8, 8, 2), -1, 1)
    converted = convert_int8(model, samples)
    assert "AVERAGE_POOL_2D" in tflite_op_names(postprocess_tflite(converted))


def test_standalone_relu_becomes_add_with_the_relu_fused():
    # An Add feeding two consumers (as in Xception's residual chain) keeps its ReLUs apart.
    inputs = keras.Input((8, 8, 4))
    total = layers.Add()([layers.Conv2D(8, 1)(inputs), layers.Conv2D(8, 1)(inputs)])
    outputs = layers.Concatenate()([layers.ReLU()(total), layers.ReLU(6.0)(total), total])
    model = keras.Model(inputs, outputs)
    samples = np.random.default_rng(2).uniform(-2, 2, (8, 8, 8, 4)).astype("float32")
    converted = convert_int8(model, samples)
    assert undelegated_ops(converted) == ["RELU", "RELU6"]
    rewritten = postprocess_tflite(converted)
    assert tflite_op_names(rewritten).count("ADD") == 3
    assert xnnpack_partitions(rewritten) == 1 and undelegated_ops(rewritten) == []
    np.testing.assert_array_equal(run_tflite(rewritten, samples), run_tflite(converted, samples))


def test_add_of_a_tiny_constant_is_requantized_for_xnnpack():
    # A constant offset far below the output's int8 step (like a BatchNorm offset near zero).
    inputs = keras.Input((8, 8, 4))
    x = layers.Conv2D(8, 1)(inputs)
    model = keras.Model(inputs, layers.Concatenate()([x, layers.Rescaling(1.0, offset=1e-4)(x)]))
    samples = np.random.default_rng(3).uniform(-1, 1, (8, 8, 8, 4)).astype("float32")
    converted = convert_int8(model, samples)
    assert undelegated_ops(converted) == ["ADD"]
    rewritten = postprocess_tflite(converted)
    assert xnnpack_partitions(rewritten) == 1 and undelegated_ops(rewritten) == []
    np.testing.assert_array_equal(run_tflite(rewritten, samples), run_tflite(converted, samples))


@pytest.mark.parametrize("int8_io", [False, True])
def test_exit_softmax_moves_to_float_only_before_a_float_output(int8_io):
    inputs = keras.Input((6,))
    model = keras.Model(inputs, layers.Softmax()(layers.Dense(5)(inputs)))
    samples = np.random.default_rng(1).normal(0, 2, (32, 6)).astype("float32")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s[None]] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        converter.inference_input_type = converter.inference_output_type = tf.int8
    converted = converter.convert()
    rewritten = postprocess_tflite(converted)
    assert undelegated_ops(converted) == ["SOFTMAX"]
    # An int8 output is integer-only (issue 13 item 1): the int8 SOFTMAX stays, after XNNPACK's
    # one partition.
    assert xnnpack_partitions(rewritten) == 1
    assert undelegated_ops(rewritten) == (["SOFTMAX"] if int8_io else [])
    assert tflite_op_names(rewritten)[-2:] == (["FULLY_CONNECTED", "SOFTMAX"] if int8_io
                                               else ["DEQUANTIZE", "SOFTMAX"])

    from ai_edge_litert.interpreter import Interpreter

    def probabilities(tflite_model):
        interpreter = Interpreter(model_content=tflite_model)
        interpreter.allocate_tensors()
        source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        out = []
        for x in samples:
            if int8_io:
                scale, zero = source["quantization"]
                x = np.clip(np.round(x / scale + zero), -128, 127)
            interpreter.set_tensor(source["index"], x[None].astype(source["dtype"]))
            interpreter.invoke()
            y = interpreter.get_tensor(target["index"])[0].astype("float32")
            if int8_io:
                scale, zero = target["quantization"]
                y = (y - zero) * scale
            out.append(y)
        return np.stack(out)

    ours, theirs = probabilities(rewritten), probabilities(converted)
    truth = model.predict(samples, verbose=0)
    assert np.abs(ours - theirs).max() <= 2 / 256
    assert np.abs(ours - truth).max() <= np.abs(theirs - truth).max() + 1 / 256


def test_float_model_is_returned_unchanged():
    model, _ = _one_op_model(HardSwish(), (4, 4, 2), -1, 1)
    fp32 = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    assert postprocess_tflite(fp32) == fp32
    sweep = np.linspace(-5, 5, 32, dtype="float32").reshape(1, 4, 4, 2)
    np.testing.assert_allclose(run_tflite(fp32, sweep), model.predict(sweep, verbose=0), atol=1e-5)
