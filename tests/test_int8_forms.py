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
from kerasnets.export.int8_forms import (
    FORMS_METADATA, add_metadata, postprocess_tflite, read_metadata, written_forms,
)
from kerasnets.layers import HardSwish


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
