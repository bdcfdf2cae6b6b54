"""kerasnets.export.int8_forms: integer-only graphs stay integer-only, and the forms written are
recorded in the model.

The reference is the plain TFLite converter (``TFLiteConverter.from_keras_model`` with int8
inputs and outputs), which keeps an int8 ``SOFTMAX``; dtypes are read from LiteRT's
``Interpreter`` directly, not from kerasnets' helpers.
"""

import numpy as np
import pytest
import tensorflow as tf

from kerasnets import export
from kerasnets._keras import keras, layers
from kerasnets.export.convert import tflite_converter
from kerasnets.export.int8_forms import (
    FORMS_METADATA, add_metadata, postprocess_tflite, read_metadata, written_forms,
)
from kerasnets.layers import HardSigmoid, HardSwish


@pytest.fixture(scope="module")
def classifier():
    """Returns ``Input(8,8,3) -> Conv2D(4,3,relu) -> HardSwish -> GlobalAveragePooling2D ->
    Dense(3, softmax)`` and 16 calibration inputs (issue 13 item 1, with a hard-swish so that
    its two int8 forms differ)."""
    keras.utils.set_random_seed(0)
    inputs = layers.Input((8, 8, 3))
    x = HardSwish()(layers.Conv2D(4, 3, activation="relu")(inputs))
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(3, activation="softmax")(x))
    calibration = np.random.default_rng(0).normal(size=(16, 8, 8, 3)).astype("float32")
    return model, calibration


def _litert(tflite_model):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_content=tflite_model,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    return interpreter


def _non_integer_tensors(tflite_model):
    """Returns ``{name: dtype}`` of every tensor that is neither int8 nor int32."""
    return {t["name"]: np.dtype(t["dtype"]).name
            for t in _litert(tflite_model).get_tensor_details()
            if np.dtype(t["dtype"]) not in (np.int8, np.int32)}


def _int8_outputs(tflite_model, inputs):
    interpreter = _litert(tflite_model)
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    scale, zero = source["quantization"]
    outputs = []
    for x in inputs:
        interpreter.set_tensor(source["index"],
                               np.clip(np.round(x / scale + zero), -128, 127)[None].astype(np.int8))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target["index"])[0].astype(int))
    return np.stack(outputs), target["quantization"]


@pytest.mark.parametrize("hard_swish", ["xnnpack", "fused"])
def test_int8_io_is_integer_only_in_every_tensor_like_the_plain_converter(classifier, hard_swish):
    model, calibration = classifier
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[None]] for x in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    reference = converter.convert()
    assert _non_integer_tensors(reference) == {}

    ours = export.convert(model, "int8", calibration, int8_io=True, hard_swish=hard_swish)
    assert _non_integer_tensors(ours) == {}
    ops = [op["op_name"] for op in _litert(ours)._get_ops_details()]
    assert ops[-1] == "SOFTMAX" and "QUANTIZE" not in ops and "DEQUANTIZE" not in ops
    assert written_forms(ours) == {"hard_swish": hard_swish, "softmax": "int8"}
    # The int8 SOFTMAX is the last op: XNNPACK still takes the rest as one partition.
    assert export.xnnpack_partitions(ours) == (1 if hard_swish == "xnnpack" else 2)

    got, got_quantization = _int8_outputs(ours, calibration)
    want, want_quantization = _int8_outputs(reference, calibration)
    assert got_quantization == want_quantization
    # The fused form is the converter's own graph; the xnnpack form rounds hard-swish apart.
    assert np.abs(got - want).max() <= (0 if hard_swish == "fused" else 2)


def test_float_io_records_the_float_exit_softmax_and_float_models_no_forms(classifier):
    model, calibration = classifier
    int8 = export.convert(model, "int8", calibration)
    assert written_forms(int8) == {"hard_swish": "xnnpack", "softmax": "float"}
    interpreter = _litert(int8)
    ops = interpreter._get_ops_details()
    assert [op["op_name"] for op in ops][-2:] == ["DEQUANTIZE", "SOFTMAX"]
    # Float only at the ends: the input, and the exit DEQUANTIZE -> SOFTMAX -> output.
    floats = {t["index"] for t in interpreter.get_tensor_details()
              if np.dtype(t["dtype"]) == np.float32}
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert floats == {source["index"], ops[-1]["inputs"][0], target["index"]}
    for precision in ("fp32", "dynamic"):
        assert written_forms(export.convert(model, precision)) is None


def test_postprocess_twice_keeps_one_record_and_metadata_round_trips(classifier):
    model, calibration = classifier
    int8 = export.convert(model, "int8", calibration, int8_io=True, hard_swish="fused")
    again = postprocess_tflite(int8, hard_swish="fused")
    assert written_forms(again) == {"hard_swish": "fused", "softmax": "int8"}
    from ai_edge_litert import schema_py_generated as schema

    names = [schema.Model.GetRootAs(again, 0).Metadata(i).Name().decode()
             for i in range(schema.Model.GetRootAs(again, 0).MetadataLength())]
    assert names.count(FORMS_METADATA) == 1
    tagged = add_metadata(add_metadata(int8, "note", b"one"), "note", b"two")
    assert read_metadata(tagged, "note") == b"two" and read_metadata(tagged, "other") is None
    with pytest.raises(ValueError, match="not a TFLite model"):
        written_forms(b"not a flatbuffer")


# --- folding constant factors into scales (issue 16 item 1) ------------------------------------

def _converted(model, calibration):
    return tflite_converter(model, "int8", calibration).convert()


def _builtin_outputs(tflite_model, inputs, tensor_name=None):
    """Returns the int8 output (or the int8 tensor ``tensor_name``) for each float input, run on
    LiteRT's builtin kernels with every tensor kept."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_content=tflite_model, experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]["index"]
    if tensor_name is not None:
        target = next(t["index"] for t in interpreter.get_tensor_details()
                      if t["name"] == tensor_name)
    outputs = []
    for x in inputs:
        interpreter.set_tensor(source["index"], x[None].astype("float32"))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target)[0].astype(int))
    return np.stack(outputs)


def test_folding_hard_swish_and_se_divides_keeps_every_int8_result():
    # Conv -> hard-swish -> squeeze-and-excite (hard-sigmoid gate) -> 1x1 conv, with activations
    # of a trained net's size (the tiny-range x/2 form is not what is tested here).
    keras.utils.set_random_seed(1)
    inputs = layers.Input((8, 8, 3))
    x = HardSwish()(layers.Conv2D(8, 3, padding="same")(inputs))
    gate = layers.GlobalAveragePooling2D(keepdims=True)(x)
    gate = HardSigmoid()(layers.Conv2D(8, 1)(layers.Conv2D(4, 1, activation="relu")(gate)))
    x = layers.Multiply()([x, gate])
    model = keras.Model(inputs, layers.Conv2D(4, 1)(x))
    calibration = np.random.default_rng(1).normal(0, 2, (16, 8, 8, 3)).astype("float32")
    converted = _converted(model, calibration)
    plain = postprocess_tflite(converted, fold_constants=False)
    folded = postprocess_tflite(converted)
    # Hard-swish loses its MUL by 1/6 (MUL, ADD(RELU6), MUL -> ADD(RELU6), MUL), the hard-sigmoid
    # its MUL by 1/6; the consumers take the 6 into their scales.
    assert export.op_histogram(plain)["MUL"] - export.op_histogram(folded)["MUL"] == 2
    assert export.xnnpack_partitions(folded) == 1 and export.undelegated_ops(folded) == []
    # The removed MULs kept the int8 values (scale / 6): the same results, up to the float
    # rounding of the products of scales the kernels requantize with.
    got, want = _builtin_outputs(folded, calibration), _builtin_outputs(plain, calibration)
    assert np.abs(got - want).max() <= 1 and np.mean(got == want) >= 0.99


def test_folding_through_a_residual_add_keeps_every_int8_result():
    # A hard-swish read by a block and by the block's residual ADD (MobileNetV3-Large's stem):
    # the projection writes the ADD's other input times 6, so the ADD takes the factor.
    keras.utils.set_random_seed(3)
    inputs = layers.Input((8, 8, 3))
    x = HardSwish()(layers.Conv2D(8, 3, padding="same")(inputs))
    y = layers.Conv2D(8, 1)(layers.DepthwiseConv2D(3, padding="same", activation="relu")(x))
    model = keras.Model(inputs, layers.Conv2D(4, 1)(layers.Add()([x, y])))
    calibration = np.random.default_rng(3).normal(0, 2, (16, 8, 8, 3)).astype("float32")
    converted = _converted(model, calibration)
    plain = postprocess_tflite(converted, fold_constants=False)
    folded = postprocess_tflite(converted)
    assert export.op_histogram(plain)["MUL"] == 2 and export.op_histogram(folded)["MUL"] == 1
    assert export.xnnpack_partitions(folded) == 1 and export.undelegated_ops(folded) == []
    got, want = _builtin_outputs(folded, calibration), _builtin_outputs(plain, calibration)
    assert np.abs(got - want).max() <= 1 and np.mean(got == want) >= 0.99


def test_folding_the_input_rescaling_rounds_once_within_one_step():
    # MobileNetV3's input Rescaling (keras.applications: scale 1/127.5, offset -1) before a
    # 'same'-padded stride-2 conv: its zero padding is y = 0, so the offset must stay an op.
    keras.utils.set_random_seed(2)
    inputs = layers.Input((8, 8, 3))
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescaling")(inputs)
    conv = layers.Conv2D(4, 3, strides=2, padding="same")
    model = keras.Model(inputs, conv(x))
    rng = np.random.default_rng(2)
    calibration = rng.integers(0, 256, (16, 8, 8, 3)).astype("float32")
    # Every pixel value, in every position.
    grid = np.stack([np.roll(np.arange(256), k)[:192].reshape(8, 8, 3)
                     for k in range(0, 256, 16)]).astype("float32")
    converted = _converted(model, calibration)
    plain = postprocess_tflite(converted, fold_constants=False)
    folded = postprocess_tflite(converted)
    assert export.op_histogram(plain)["MUL"] == 1 and "MUL" not in export.op_histogram(folded)
    assert export.op_histogram(folded)["ADD"] == 1
    assert export.xnnpack_partitions(folded) == 1 and export.undelegated_ops(folded) == []
    interpreter = _litert(plain)
    ops = interpreter._get_ops_details()
    add = next(op for op in ops if op["op_name"] == "ADD")
    mul = next(op for op in ops if op["op_name"] == "MUL")
    y = interpreter._get_tensor_details(add["outputs"][0], 0)
    s_y = y["quantization"][0]
    s_mul = interpreter._get_tensor_details(mul["outputs"][0], 0)["quantization"][0]
    # The unfolded graph rounds x / 127.5 to half a step of the MUL's output, then y to half a
    # step; the folded one rounds y once. Their int8 y differ by at most
    # floor(s_mul / (2 s_y) + 1) steps.
    bound = np.floor(s_mul / (2 * s_y) + 1)
    got_y = _builtin_outputs(folded, grid, y["name"])
    want_y = _builtin_outputs(plain, grid, y["name"])
    assert np.abs(got_y - want_y).max() <= bound
    # Through the conv: a difference of d steps of y moves an output by at most
    # d * s_y * sum|w| / s_out, plus the output's own rounding.
    s_out = interpreter.get_output_details()[0]["quantization"][0]
    spread = bound * s_y * np.abs(conv.kernel.numpy()).sum(axis=(0, 1, 2)).max() / s_out
    got, want = _builtin_outputs(folded, grid), _builtin_outputs(plain, grid)
    assert np.abs(got - want).max() <= np.floor(spread + 1)
    # And the folded y is y = x / 127.5 - 1 rounded once: within half a step of it (x is on
    # the int8 input grid, scale 1: the pixel values themselves).
    exact = np.clip((grid / 127.5 - 1) / s_y + y["quantization"][1], -128, 127)
    assert np.abs(got_y - exact).max() <= 0.5 + 1e-3


@pytest.fixture(scope="module")
def two_output_int8():
    """Returns ``(int8 .tflite bytes with float io, calibration inputs)`` of ``Input(8,8,3) ->
    Conv2D(4,3,relu)`` with two outputs: the feature map (``output_0``, after a DEQUANTIZE)
    and a softmax head on it (``output_1``), the shape of an early-exit stage. Its signature
    input is ``images`` (``kerasnets.export.convert``'s name for a single input)."""
    keras.utils.set_random_seed(0)
    inputs = layers.Input((8, 8, 3), name="images")
    features = layers.Conv2D(4, 3, activation="relu")(inputs)
    head = layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling2D()(features))
    calibration = np.random.default_rng(0).normal(size=(16, 8, 8, 3)).astype("float32")
    model = keras.Model(inputs, [features, head])
    return export.convert(model, "int8", calibration), calibration


def _signature_run(tflite_model, feeds):
    """Returns ``(outputs by name, input details, output details)`` of one signature call."""
    runner = _litert(tflite_model).get_signature_runner()
    return runner(**feeds), runner.get_input_details(), runner.get_output_details()


def _quantize(x, quantization):
    scale, zero_point = quantization
    return np.clip(np.round(x / scale + zero_point), -128, 127).astype(np.int8)


def test_int8_interfaces_hand_on_the_int8_tensors_of_the_float_model(two_output_int8):
    """A float input and output made int8 carry the int8 values the QUANTIZE and DEQUANTIZE
    they replace would have read and written: the same results."""
    from kerasnets.export.int8_forms import int8_interfaces

    tflite_model, calibration = two_output_int8
    x = calibration[:1]
    want, inputs, _ = _signature_run(tflite_model, {"images": x})
    own = _litert(tflite_model)
    quantize = next(op for op in own._get_ops_details() if op["op_name"] == "QUANTIZE")
    input_quantization = own._get_tensor_details(quantize["outputs"][0], 0)["quantization"]
    rewritten, quantization = int8_interfaces(tflite_model, ["images"], ["output_0"])
    got, inputs, outputs = _signature_run(rewritten,
                                          {"images": _quantize(x, input_quantization)})
    assert inputs["images"]["dtype"] == np.int8
    assert inputs["images"]["quantization"] == input_quantization
    assert outputs["output_0"]["dtype"] == np.int8 and outputs["output_1"]["dtype"] == np.float32
    assert outputs["output_0"]["quantization"] == quantization["output_0"]
    # The DEQUANTIZE's float output maps back to the int8 values it read.
    np.testing.assert_array_equal(got["output_0"],
                                  _quantize(want["output_0"], quantization["output_0"]))
    np.testing.assert_array_equal(got["output_1"], want["output_1"])
    # The float image and feature tensors are gone (the head keeps its float softmax).
    gone = set(_non_integer_tensors(tflite_model)) - set(_non_integer_tensors(rewritten))
    assert len(gone) == 2 and not set(_non_integer_tensors(rewritten)) - set(
        _non_integer_tensors(tflite_model))


def test_int8_interfaces_requantize_an_input_fed_with_another_scale(two_output_int8):
    """An int8 input fed with another quantization keeps a QUANTIZE, now int8 to int8: the
    results are the float model's on the values fed, to within one int8 step."""
    from kerasnets.export.int8_forms import int8_interfaces

    tflite_model, calibration = two_output_int8
    own = _litert(tflite_model)
    quantize = next(op for op in own._get_ops_details() if op["op_name"] == "QUANTIZE")
    scale, zero_point = own._get_tensor_details(quantize["outputs"][0], 0)["quantization"]
    fed = (1.5 * scale, zero_point + 3)
    rewritten, _ = int8_interfaces(tflite_model, ["images"], ["output_0"], {"images": fed})
    assert [op["op_name"] for op in _litert(rewritten)._get_ops_details()].count("QUANTIZE") == 1
    for x in calibration[:4]:
        q = _quantize(x[None], fed)
        want, _, _ = _signature_run(tflite_model,
                                    {"images": fed[0] * (q.astype(np.float32) - fed[1])})
        got, inputs, outputs = _signature_run(rewritten, {"images": q})
        assert inputs["images"]["quantization"] == pytest.approx(fed)
        out_scale, out_zero = outputs["output_0"]["quantization"]
        np.testing.assert_allclose(out_scale * (got["output_0"].astype(np.float32) - out_zero),
                                   want["output_0"], atol=1.01 * out_scale)


def test_int8_interfaces_name_what_they_cannot_make_int8(two_output_int8):
    from kerasnets.export.int8_forms import int8_interfaces

    tflite_model, _ = two_output_int8
    with pytest.raises(ValueError, match=r"'pixels' is not a signature input.*\['images'\]"):
        int8_interfaces(tflite_model, ["pixels"])
    with pytest.raises(ValueError, match="'output_1' is not written by a DEQUANTIZE"):
        int8_interfaces(tflite_model, outputs=["output_1"])
    with pytest.raises(ValueError, match="'output_9' is not a signature output"):
        int8_interfaces(tflite_model, outputs=["output_9"])
