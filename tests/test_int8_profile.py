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


def _run_all_tensors(blob, feeds=None):
    """Runs ``blob`` on LiteRT's builtin kernels keeping every tensor; returns the interpreter."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_content=blob, experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(1)
    for detail in interpreter.get_input_details():
        value = (feeds or {}).get(detail["index"])
        if value is None:
            value = rng.uniform(0, 255, detail["shape"]).astype(detail["dtype"])
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return interpreter


def test_each_single_op_model_computes_its_op(v3_block):
    """Every copy of an op alone, fed the op's inputs from a run of the whole model, writes
    the value the whole model wrote at that op's output."""
    for blob in v3_block:
        graph = schema.ModelT.InitFromPackedBuf(bytearray(blob), 0).subgraphs[0]
        whole = _run_all_tensors(blob)
        for position, op in enumerate(graph.operators):
            alone = int8_profile.single_op_model(blob, position, copies=2)
            alone_graph = schema.ModelT.InitFromPackedBuf(bytearray(alone), 0).subgraphs[0]
            assert len(alone_graph.operators) == 2
            feeds = {int(i): whole.get_tensor(int(i)) for i in alone_graph.inputs}
            ran = _run_all_tensors(alone, feeds)
            expected = whole.get_tensor(int(op.outputs[0]))
            for out in alone_graph.outputs:
                np.testing.assert_array_equal(ran.get_tensor(int(out)), expected)
            assert xnnpack_partitions(alone) <= 1


def test_per_op_groups_by_geometry_and_kind(v3_block):
    _, int8 = v3_block
    rows = int8_profile.per_op(int8, threads=1, runs=2, warmup=0, copies=2)
    graph = schema.ModelT.InitFromPackedBuf(bytearray(int8), 0).subgraphs[0]
    assert [r[0] for r in rows] == list(range(len(graph.operators)))
    labels = [r[1] for r in rows]
    # the stem 3x3/s2 conv, the 1x1 convs (expansion, projection, SE), the stride-1 3x3
    # depthwise, the hard-swish MULs, the SE broadcast MUL, the residual ADD.
    assert labels.count("CONV_2D 3x3/s2") == 1
    assert labels.count("DEPTHWISE_CONV_2D 3x3/s1") == 1
    assert labels.count("CONV_2D 1x1/s1") == 4
    assert labels.count("MUL (SE scale)") == 1 and labels.count("residual ADD") == 1
    assert labels.count("MUL (hard-swish)") == 3
    text = int8_profile.format_per_op({"int8": rows}, {"int8": 1.0}, top=3)
    assert "| CONV_2D 3x3/s2 | 1, " in text and text.count("\n| ") >= 3


@pytest.mark.parametrize("argv", [["--copies", "1"], ["--runs", "0"], ["--method", "x"]])
def test_profile_rejects_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        int8_profile.main(argv)
    assert exit_info.value.code == 2
    assert argv[0] in capsys.readouterr().err
