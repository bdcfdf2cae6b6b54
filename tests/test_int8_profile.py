"""benchmarks/int8_profile.py: the op kinds it finds in a MobileNetV3-style int8 graph, and the
graphs without each kind, which must keep every other op alive (XNNPACK drops ops nothing
reads, which would time far more than the kind: issue 16 item 2)."""

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from benchmarks import int8_profile
from kerasnets._keras import keras, layers
from kerasnets.export import convert, xnnpack_partitions
from kerasnets.export.int8_forms import postprocess_tflite
from kerasnets.export.convert import tflite_converter
from kerasnets.layers import HardSigmoid, HardSwish


@pytest.fixture(scope="module")
def v3_block():
    """Returns the float and int8 ``.tflite`` of Rescaling -> conv -> hard-swish -> a residual
    inverted bottleneck with squeeze-and-excite (one stride-1 depthwise) -> softmax head."""
    keras.utils.set_random_seed(0)
    inputs = layers.Input((16, 16, 3))
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="rescaling")(inputs)
    x = HardSwish()(layers.Conv2D(8, 3, strides=2, padding="same")(x))
    y = HardSwish()(layers.Conv2D(16, 1)(x))
    y = HardSwish()(layers.DepthwiseConv2D(3, padding="same")(y))
    gate = layers.GlobalAveragePooling2D(keepdims=True)(y)
    gate = HardSigmoid()(layers.Conv2D(16, 1)(layers.Conv2D(4, 1, activation="relu")(gate)))
    y = layers.Conv2D(8, 1)(layers.Multiply()([y, gate]))
    x = layers.Add()([x, y])
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(5, activation="softmax")(x))
    calibration = np.random.default_rng(0).uniform(0, 255, (16, 16, 16, 3)).astype("float32")
    int8 = postprocess_tflite(tflite_converter(model, "int8", calibration).convert())
    return convert(model, "fp32"), int8


def _live_ops(tflite_model):
    """Returns (ops, ops some graph output depends on)."""
    graph = schema.ModelT.InitFromPackedBuf(bytearray(tflite_model), 0).subgraphs[0]
    producer = {int(t): i for i, op in enumerate(graph.operators) for t in op.outputs}
    live, stack = set(), [int(t) for t in graph.outputs]
    while stack:
        i = producer.get(stack.pop())
        if i is not None and i not in live:
            live.add(i)
            stack += [int(t) for t in graph.operators[i].inputs if t >= 0]
    return len(graph.operators), len(live)


def test_kinds_of_a_v3_block(v3_block):
    fp32, int8 = v3_block
    counts = {}
    for name, blob in (("fp32", fp32), ("int8", int8)):
        kinds = int8_profile.classify(schema.ModelT.InitFromPackedBuf(bytearray(blob), 0))
        counts[name] = {k: list(kinds.values()).count(k) for k in set(kinds.values())}
    # fp32: MUL+ADD rescaling, 3 HARD_SWISH, the hard-sigmoid's MUL on 1x1 (its +3 and RELU6 go
    # into the conv), the SE MUL, the residual ADD, the exit SOFTMAX.
    assert counts["fp32"] == {"input Rescaling": 2, "hard-swish": 3, "SE gate (1x1)": 1,
                              "SE scale": 1, "residual ADD": 1, "depthwise (stride 1)": 1,
                              "ends": 1}
    # int8, folded: one rescaling ADD, hard-swish as ADD(RELU6), MUL, the SE's /6 gone (the
    # stem's hard-swish too: the residual ADD that also reads it has the projection write its
    # other input times 6).
    assert counts["int8"] == {"input Rescaling": 1, "hard-swish": 6, "SE scale": 1,
                              "residual ADD": 1, "depthwise (stride 1)": 1, "ends": 3}


@pytest.mark.parametrize("kind", int8_profile.KINDS)
def test_removing_a_kind_keeps_every_other_op_alive(v3_block, kind):
    for blob in v3_block:
        removed_from, count = int8_profile.without(blob, kind)
        before, _ = _live_ops(blob)
        ops, live = _live_ops(removed_from)
        assert ops == before - count
        # Only a removed SE scale leaves ops unread: the SE branch (MEAN, 2 convs, gate).
        assert live == ops or kind == "SE scale"
        assert xnnpack_partitions(removed_from) == 1
