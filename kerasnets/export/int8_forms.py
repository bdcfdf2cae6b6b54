"""int8 TFLite graphs that LiteRT's default CPU delegate (XNNPACK) runs as one partition.

The TFLite converter emits int8 ops that XNNPACK does not take (measured with
``benchmarks/probe_xnnpack_int8.py``, ai-edge-litert 2.3.0): ``HARD_SWISH`` (MobileNetV3),
``AVERAGE_POOL_2D`` (DenseNet transitions), ``SOFTMAX`` (every classifier) and a standalone
``RELU``/``RELU6`` (one the converter cannot fuse into its producer, e.g. Xception's ReLU after
a residual ``Add`` that also feeds the next one). Each such op runs on LiteRT's own kernels
between XNNPACK partitions, with a float round trip at each cut; int8 MobileNetV3 ends up
slower than float.

``postprocess_tflite`` rewrites a converted model into equivalent ops XNNPACK does take. It
works on the flatbuffer, after conversion, so it serves post-training and quantization-aware
models alike and leaves the Keras model (its float function and its weights) untouched:

- int8 ``HARD_SWISH(x)`` -> ``MUL(x, 1/6)``, ``ADD(x, 3)`` with a fused ``RELU6``, ``MUL``: the
  hard-swish ``(x / 6) * relu6(x + 3)``. ``x / 6`` keeps the int8 values of ``x`` (its scale is
  divided by 6); ``relu6(x + 3)`` gets the range ``[0, min(6, max(x) + 3)]``; the product keeps
  the quantization of the original output. ``hard_swish="fused"`` keeps ``HARD_SWISH``.
- int8 ``AVERAGE_POOL_2D`` without padding -> ``DEPTHWISE_CONV_2D`` whose weights are all
  ``1 / (kh * kw)`` (exact in int8: value 127, scale ``1 / (127 kh kw)``) and bias 0.
- int8 ``RELU``/``RELU6``/``RELU_N1_TO_1`` -> ``ADD(x, 0)`` with that activation fused, same
  output quantization (the same int8 results).
- int8 ``ADD`` with a constant input whose scale is below 1/1024 of the output scale (XNNPACK's
  limit; e.g. a BatchNorm offset near zero) -> the constant requantized to the smallest scale
  XNNPACK takes, which moves it by less than 1/2048 of an output step.
- int8 ``SOFTMAX`` at a float output (``SOFTMAX -> DEQUANTIZE -> output``) -> the softmax moves
  after the ``DEQUANTIZE`` and runs in float: probabilities come out of a float softmax of the
  same int8 logits. A softmax whose int8 output is the graph output (``int8_io``: the user asked
  for integer-only) stays int8: no rewrite puts a float tensor between int8 ends. It runs on
  LiteRT's int8 kernel after XNNPACK's partition (the last op, so the graph stays one
  partition).

Then (``fold_constants=True``, the default) each int8 ``MUL`` by a scalar constant goes where
the following ops can take its factor into their scales (issue 16: element-wise ops are most of
int8 MobileNetV3's time outside convolutions, ``benchmarks/int8_profile.py``): the ops that read
its result read its input instead; a convolution, depthwise convolution or fully-connected
layer takes the factor into its per-channel weight scales, MEAN, RESHAPE and a MUL of two
activations into their output scale (passing it on), an ADD of a constant into the constant's
and the output's scales. The int8 arithmetic of each such op reads only products and ratios of
scales, so where the MUL kept the int8 values (hard-swish's ``x / 6``, squeeze-and-excite's
hard-sigmoid ``/ 6``) every result stays the same: hard-swish becomes ``ADD(x, 3)`` (RELU6),
``MUL``. Where it requantized (the input ``Rescaling``'s ``x / 127.5`` before ``- 1``) its
rounding goes: the ADD rounds once, within ``floor(s_mul / (2 s_add) + 1)`` int8 steps of the
unfolded result (``s_mul``, ``s_add``: the MUL's and the ADD's output scales; 1 step for
MobileNetV3). The ADD stays: the first convolution zero-pads after the rescaling, so its
offset is no constant a convolution bias can take.

``int8_interfaces`` makes chosen float inputs and outputs of an int8 model int8 (their
``QUANTIZE``/``DEQUANTIZE`` removed), for models that hand tensors on to each other.

Every int8 model comes back with a record of the forms written (``written_forms``), in the
TFLite metadata entry ``kerasnets_int8_forms``. The module also reads and writes TFLite metadata
entries (``add_metadata``, ``read_metadata``).
"""

import collections
import json
import logging

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

log = logging.getLogger(__name__)

HARD_SWISH_FORMS = ("xnnpack", "fused")
FORMS_METADATA = "kerasnets_int8_forms"

_OP = schema.BuiltinOperator
_OP_NAMES = {v: k for k, v in vars(_OP).items() if not k.startswith("_")}
_INT8, _INT32, _FLOAT32 = schema.TensorType.INT8, schema.TensorType.INT32, schema.TensorType.FLOAT32
# Op versions the TFLite converter (TF 2.21) writes for these kernels with int8 tensors (float
# for SOFTMAX); the runtime registers every version up to its newest.
_VERSIONS = {
    _OP.ADD: 2, _OP.MUL: 2, _OP.DEPTHWISE_CONV_2D: 3, _OP.DEQUANTIZE: 2, _OP.SOFTMAX: 1,
}


# XNNPACK delegates an int8 ADD only if each input scale is at least 1/1024 and below 256 times
# the output scale (tensorflow/lite/delegates/xnnpack/xnnpack_delegate.cc, VisitAddNode).
_XNNPACK_MIN_ADD_SCALE_RATIO = 1024.0
_XNNPACK_MAX_ADD_SCALE_RATIO = 256.0


def check_hard_swish_form(hard_swish):
    """Returns ``hard_swish`` if it names an int8 form of hard-swish; raises ValueError if not."""
    if hard_swish not in HARD_SWISH_FORMS:
        raise ValueError(
            f"`hard_swish` must be one of {HARD_SWISH_FORMS}; received hard_swish={hard_swish!r}"
        )
    return hard_swish


def _builtin(code):
    # Codes >= 127 live in builtinCode; older files only fill deprecatedBuiltinCode.
    return max(code.builtinCode, code.deprecatedBuiltinCode)


class _Subgraph:
    """Edits one subgraph of a ``schema.ModelT``: new tensors, constants, operators."""

    def __init__(self, model, subgraph):
        self.model = model
        self.graph = subgraph
        self.tensors = subgraph.tensors

    def op_code(self, op):
        return _builtin(self.model.operatorCodes[op.opcodeIndex])

    def opcode_index(self, builtin):
        version = _VERSIONS[builtin]
        for index, code in enumerate(self.model.operatorCodes):
            if _builtin(code) == builtin and code.version == version:
                return index
        code = schema.OperatorCodeT()
        code.builtinCode = builtin
        code.deprecatedBuiltinCode = min(builtin, 127)
        code.version = version
        self.model.operatorCodes.append(code)
        return len(self.model.operatorCodes) - 1

    def quant(self, tensor):
        q = tensor.quantization
        return float(q.scale[0]), int(q.zeroPoint[0])

    def name(self, index, suffix):
        """Returns the name of tensor ``index`` (the object API reads bytes) plus ``suffix``."""
        return _text(self.tensors[index].name) + suffix

    def add_tensor(self, name, like, tensor_type, scale=None, zero_point=None):
        tensor = schema.TensorT()
        tensor.name = name
        tensor.type = tensor_type
        tensor.shape = np.array(like.shape, dtype=np.int32)
        if like.shapeSignature is not None:
            tensor.shapeSignature = np.array(like.shapeSignature, dtype=np.int32)
        tensor.buffer = 0
        if scale is not None:
            tensor.quantization = _quantization([scale], [zero_point])
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def add_constant(self, name, values, quantization):
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(np.ascontiguousarray(values).tobytes(), dtype=np.uint8)
        self.model.buffers.append(buffer)
        tensor = schema.TensorT()
        tensor.name = name
        tensor.type = _INT8 if values.dtype == np.int8 else _INT32
        tensor.shape = np.array(values.shape, dtype=np.int32)
        tensor.buffer = len(self.model.buffers) - 1
        tensor.quantization = quantization
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def operator(self, builtin, inputs, outputs, options_type=0, options=None):
        op = schema.OperatorT()
        op.opcodeIndex = self.opcode_index(builtin)
        op.inputs = np.array(inputs, dtype=np.int32)
        op.outputs = np.array(outputs, dtype=np.int32)
        op.builtinOptionsType = options_type
        op.builtinOptions = options
        return op

    def consumers(self, tensor_index):
        return [op for op in self.graph.operators if tensor_index in list(op.inputs)]


def _quantization(scale, zero_point, dimension=0):
    q = schema.QuantizationParametersT()
    q.scale = np.array(scale, dtype=np.float32)
    q.zeroPoint = np.array(zero_point, dtype=np.int64)
    q.quantizedDimension = dimension
    return q


def _activation_options(options_class, activation):
    options = options_class()
    options.fusedActivationFunction = activation
    return options


def _scalar(sub, name, value):
    """Returns the index of a new int8 constant holding ``value`` exactly (stored as 127)."""
    return sub.add_constant(name, np.array([127], np.int8), _quantization([value / 127], [0]))


def _hard_swish_ops(sub, op):
    """Returns ``(x / 6) * relu6(x + 3)`` as int8 MUL, ADD(RELU6), MUL replacing ``op``."""
    x, y = int(op.inputs[0]), int(op.outputs[0])
    x_scale, x_zero = sub.quant(sub.tensors[x])
    name = sub.name(y, "")
    mul = schema.BuiltinOptions.MulOptions
    none, relu6 = schema.ActivationFunctionType.NONE, schema.ActivationFunctionType.RELU6
    # The largest value of relu6(x + 3); 0 must stay representable for the int8 zero point.
    top = min(6.0, max(0.0, x_scale * (127 - x_zero) + 3.0)) or 6.0
    # XNNPACK also wants the ADD's input scale below 256 times its output scale: for an x range
    # beyond about +-750 the gate gets a coarser step (hard-swish is then x or 0 nearly
    # everywhere).
    gate_scale = max(top / 255.0, x_scale / (_XNNPACK_MAX_ADD_SCALE_RATIO / 1.01))
    if x_scale < gate_scale / _XNNPACK_MIN_ADD_SCALE_RATIO:
        # All of x spans less than 1/8 of the gate's int8 step, so relu6(x + 3) quantizes to
        # exactly 3 and hard-swish is x / 2. XNNPACK also refuses an ADD whose input scale is
        # that far below its output scale (random-weight networks get such tiny ranges).
        return [
            sub.operator(_OP.MUL, [x, _scalar(sub, f"{name}/half", 0.5)], [y], mul,
                         _activation_options(schema.MulOptionsT, none))
        ]
    three = _scalar(sub, f"{name}/three", 3.0)
    sixth = _scalar(sub, f"{name}/one_sixth", 1.0 / 6.0)
    x_div6 = sub.add_tensor(f"{name}/x_div6", sub.tensors[x], _INT8, x_scale / 6.0, x_zero)
    gate = sub.add_tensor(f"{name}/relu6_x_plus3", sub.tensors[x], _INT8, gate_scale, -128)
    add = schema.BuiltinOptions.AddOptions
    no_activation = _activation_options(schema.MulOptionsT, none)
    return [
        sub.operator(_OP.MUL, [x, sixth], [x_div6], mul, no_activation),
        sub.operator(_OP.ADD, [x, three], [gate], add,
                     _activation_options(schema.AddOptionsT, relu6)),
        sub.operator(_OP.MUL, [x_div6, gate], [y], mul, no_activation),
    ]


def _average_pool_ops(sub, op):
    """Returns an int8 DEPTHWISE_CONV_2D equal to the unpadded AVERAGE_POOL_2D ``op``, or None."""
    options = op.builtinOptions
    x = int(op.inputs[0])
    shape = list(sub.tensors[x].shape)
    kh, kw = options.filterHeight, options.filterWidth
    if len(shape) != 4 or min(shape[1:]) <= 0:
        return None
    if options.padding == schema.Padding.SAME:
        # 'SAME' pads (and averages fewer cells at the border) unless the windows tile exactly.
        for size, kernel, stride in ((shape[1], kh, options.strideH),
                                     (shape[2], kw, options.strideW)):
            out = -(-size // stride)
            if (out - 1) * stride + kernel - size > 0:
                return None
    channels = shape[3]
    x_scale, _ = sub.quant(sub.tensors[x])
    weight_scale = 1.0 / (kh * kw * 127)
    name = sub.name(int(op.outputs[0]), "")
    weights = sub.add_constant(
        f"{name}/average_weights",
        np.full((1, kh, kw, channels), 127, np.int8),
        _quantization([weight_scale] * channels, [0] * channels, dimension=3),
    )
    bias = sub.add_constant(
        f"{name}/zero_bias",
        np.zeros((channels,), np.int32),
        _quantization([x_scale * weight_scale] * channels, [0] * channels),
    )
    conv = schema.DepthwiseConv2DOptionsT()
    conv.padding = schema.Padding.VALID
    conv.strideH, conv.strideW = options.strideH, options.strideW
    conv.depthMultiplier = 1
    conv.dilationHFactor = conv.dilationWFactor = 1
    conv.fusedActivationFunction = options.fusedActivationFunction
    return [
        sub.operator(
            _OP.DEPTHWISE_CONV_2D, [x, weights, bias], list(op.outputs),
            schema.BuiltinOptions.DepthwiseConv2DOptions, conv,
        )
    ]


# Standalone int8 activations XNNPACK leaves out, and the fused activation that replaces them.
_FUSABLE_ACTIVATIONS = {
    _OP.RELU: schema.ActivationFunctionType.RELU,
    _OP.RELU6: schema.ActivationFunctionType.RELU6,
    _OP.RELU_N1_TO_1: schema.ActivationFunctionType.RELU_N1_TO_1,
}


def _activation_ops(sub, op):
    """Returns the standalone int8 RELU/RELU6/RELU_N1_TO_1 ``op`` as ADD(x, 0) with it fused."""
    x, y = int(op.inputs[0]), int(op.outputs[0])
    y_scale, _ = sub.quant(sub.tensors[y])
    zero = sub.add_constant(sub.name(y, "/zero"), np.array([0], np.int8),
                            _quantization([y_scale], [0]))
    options = _activation_options(schema.AddOptionsT, _FUSABLE_ACTIVATIONS[sub.op_code(op)])
    return [sub.operator(_OP.ADD, [x, zero], [y], schema.BuiltinOptions.AddOptions, options)]


def _add_constant_ops(sub, op):
    """Returns the int8 ADD ``op`` with a constant input requantized for XNNPACK, or None.

    XNNPACK refuses an ADD whose input scale is below 1/1024 of its output scale. A constant
    that small (a BatchNorm offset near zero, say) moves by less than 1/2048 of an output step
    when requantized to the smallest scale XNNPACK takes.
    """
    y_scale, _ = sub.quant(sub.tensors[int(op.outputs[0])])
    smallest = y_scale / _XNNPACK_MIN_ADD_SCALE_RATIO * 1.001
    inputs = [int(i) for i in op.inputs]
    for position, index in enumerate(inputs):
        tensor = sub.tensors[index]
        data = sub.model.buffers[tensor.buffer].data if tensor.buffer else None
        if data is None or len(data) == 0 or tensor.type != _INT8:
            continue
        scale, zero = sub.quant(tensor)
        if len(tensor.quantization.scale) != 1 or scale >= smallest:
            continue
        real = scale * (np.asarray(data, np.uint8).view(np.int8).astype(np.float64) - zero)
        new_scale = max(smallest, float(np.abs(real).max()) / 127)
        values = np.clip(np.round(real / new_scale), -127, 127).astype(np.int8)
        inputs[position] = sub.add_constant(
            sub.name(index, "/requantized"), values.reshape(list(tensor.shape)),
            _quantization([new_scale], [0]),
        )
    if inputs == [int(i) for i in op.inputs]:
        return None
    return [sub.operator(_OP.ADD, inputs, list(op.outputs), op.builtinOptionsType,
                         op.builtinOptions)]


def _float_softmax_ops(sub, op):
    """Returns the int8 ``SOFTMAX -> DEQUANTIZE -> float output`` of ``op`` as ``DEQUANTIZE ->
    float SOFTMAX``, or None when ``op`` does not end at a float output.

    Returns ``(ops, dequantize_op_to_drop)``.
    """
    logits, probs = int(op.inputs[0]), int(op.outputs[0])
    consumers = sub.consumers(probs)
    if (probs in [int(t) for t in sub.graph.outputs] or len(consumers) != 1
            or sub.op_code(consumers[0]) != _OP.DEQUANTIZE
            or int(consumers[0].outputs[0]) not in [int(t) for t in sub.graph.outputs]):
        return None
    dequantize = consumers[0]
    float_logits = sub.add_tensor(sub.name(logits, "/dequantized"), sub.tensors[logits], _FLOAT32)
    return [
        sub.operator(_OP.DEQUANTIZE, [logits], [float_logits]),
        sub.operator(_OP.SOFTMAX, [float_logits], [int(dequantize.outputs[0])],
                     op.builtinOptionsType, op.builtinOptions),
    ], dequantize


# Ops that pass a constant factor on the real value of their int8 input 0 to their output
# unchanged in bytes when the output scale takes the factor: their integer arithmetic reads
# only the ratio of input to output scale (int8 MEAN, RESHAPE; MUL of two activations).
_FACTOR_PASSING = (_OP.MEAN, _OP.RESHAPE, _OP.MUL)
# Ops whose per-channel weight scales take a factor on the real value of their input 0: the
# int32 accumulator reads input scale x weight scale only.
_FACTOR_ABSORBING = (_OP.CONV_2D, _OP.DEPTHWISE_CONV_2D, _OP.FULLY_CONNECTED)


def _constant_data(sub, index):
    """Returns the int8 values of constant tensor ``index``, or None if it is not one."""
    tensor = sub.tensors[index]
    data = sub.model.buffers[tensor.buffer].data if tensor.buffer else None
    if data is None or len(data) == 0 or tensor.type != _INT8:
        return None
    return np.asarray(data, np.uint8).view(np.int8)


def _factor_plan(sub, tensor_index, factor, plan, uses):
    """Adds to ``plan`` ({tensor index: scale multiplier}) what lets every consumer of int8
    tensor ``tensor_index`` read a real value ``factor`` times the one it read, with the same
    results; returns False when some consumer cannot (the plan is then unusable).

    A convolution or fully-connected layer divides its weight scales by ``factor``; MEAN,
    RESHAPE and a MUL of two activations (no fused clamp) multiply their output scale by
    ``factor`` and pass it on; an ADD multiplies its output scale and the constant's scale, or
    has the linear convolution that writes its other input write it times ``factor``
    (``_emit_factor``); no fused clamp but RELU, which clamps at 0 at any scale. Every changed
    tensor (weights, biases, constants) must be used by that one op (``uses``: tensor index ->
    op count).
    """
    if tensor_index in [int(t) for t in sub.graph.outputs]:
        return False
    for op in sub.consumers(tensor_index):
        code, inputs = sub.op_code(op), [int(i) for i in op.inputs]
        activation = getattr(op.builtinOptions, "fusedActivationFunction",
                             schema.ActivationFunctionType.NONE)
        if code in _FACTOR_ABSORBING and inputs[0] == tensor_index:
            weights = inputs[1]
            if uses[weights] != 1 or weights in plan or tensor_index in inputs[1:]:
                return False
            plan[weights] = 1.0 / factor
            continue
        if activation not in (schema.ActivationFunctionType.NONE,
                              schema.ActivationFunctionType.RELU):
            return False
        if code == _OP.ADD:
            other = inputs[1 - inputs.index(tensor_index)]
            if inputs.count(tensor_index) != 1 or uses[other] != 1 or other in plan:
                return False
            if _constant_data(sub, other) is not None:
                plan[other] = factor
            elif not _emit_factor(sub, other, factor, plan, uses):
                return False
        elif code not in _FACTOR_PASSING or (code != _OP.MUL and inputs[0] != tensor_index):
            return False
        elif code == _OP.MUL and (inputs.count(tensor_index) != 1 or activation
                                  != schema.ActivationFunctionType.NONE):
            return False
        output = int(op.outputs[0])
        if output in plan or not _factor_plan(sub, output, factor, plan, uses):
            return False
        plan[output] = factor
    return True


def _emit_factor(sub, tensor_index, factor, plan, uses):
    """Adds to ``plan`` what makes the producer of ``tensor_index`` write the same bytes with a
    real value ``factor`` times its own; returns False when it cannot.

    The other input of a residual ADD (a MobileNetV3 block's projection, a linear convolution
    read by that ADD only) takes the factor its first input carries: weight, bias and output
    scales times ``factor`` leave the requantized result (accumulator x input scale x weight
    scale / output scale) as it was, and the bias scale equal to input x weight scale.
    """
    producers = [op for op in sub.graph.operators if tensor_index in [int(t) for t in op.outputs]]
    if len(producers) != 1 or tensor_index in [int(t) for t in sub.graph.outputs]:
        return False
    op = producers[0]
    inputs = [int(i) for i in op.inputs]
    if (sub.op_code(op) not in _FACTOR_ABSORBING or len(sub.consumers(tensor_index)) != 1
            or op.builtinOptions.fusedActivationFunction != schema.ActivationFunctionType.NONE):
        return False
    constants = [i for i in inputs[1:] if i >= 0]
    if any(uses[i] != 1 or i in plan for i in constants):
        return False
    for index in constants + [tensor_index]:
        plan[index] = factor
    return True


def _xnnpack_add_scales_ok(sub, scales):
    """Returns whether every int8 ADD keeps the input/output scale ratios XNNPACK takes once
    the tensor scales are multiplied by ``scales`` ({tensor index: multiplier})."""
    def scale(index):
        return sub.quant(sub.tensors[index])[0] * scales.get(index, 1.0)

    for op in sub.graph.operators:
        if sub.op_code(op) != _OP.ADD or not any(int(t) in scales for t in
                                                 list(op.inputs) + list(op.outputs)):
            continue
        out = scale(int(op.outputs[0]))
        for index in op.inputs:
            ratio = scale(int(index)) / out
            if not 1.0 / _XNNPACK_MIN_ADD_SCALE_RATIO <= ratio < _XNNPACK_MAX_ADD_SCALE_RATIO:
                return False
    return True


def _fold_scalar_muls(sub):
    """Removes each int8 ``MUL(x, c)`` by a scalar constant ``c`` whose consumers can take
    ``x`` itself (see ``_factor_plan``); returns how many it removed.

    The consumers of ``y = x * c`` then read ``x``, a real value ``1 / c`` times theirs; each
    takes the factor into a scale. Where ``y`` held the bytes of ``x`` (the ``x / 6`` of
    hard-swish, the ``/ 6`` of hard-sigmoid: scale divided by 6, same int8 values) every
    result is the same; where the MUL requantized (the input ``Rescaling``'s ``x / 127.5``),
    its rounding goes: the next op rounds once instead of twice.
    """
    removed = 0
    for op in list(sub.graph.operators):
        if sub.op_code(op) != _OP.MUL or op.builtinOptions is None or (
                op.builtinOptions.fusedActivationFunction != schema.ActivationFunctionType.NONE):
            continue
        inputs = [int(i) for i in op.inputs]
        constants = [i for i in inputs if _constant_data(sub, i) is not None]
        if len(constants) != 1 or _constant_data(sub, constants[0]).size != 1:
            continue
        (c_index,), x = constants, inputs[1 - inputs.index(constants[0])]
        if sub.tensors[x].type != _INT8 or len(sub.tensors[x].quantization.scale) != 1:
            continue
        c_scale, c_zero = sub.quant(sub.tensors[c_index])
        c = c_scale * (float(_constant_data(sub, c_index)[0]) - c_zero)
        y = int(op.outputs[0])
        uses = collections.Counter(int(t) for o in sub.graph.operators for t in o.inputs)
        plan = {}
        if c <= 0 or not _factor_plan(sub, y, 1.0 / c, plan, uses):
            continue
        # y's consumers read x from now on: y's own scale is no longer used.
        if not _xnnpack_add_scales_ok(sub, {**plan, y: sub.quant(sub.tensors[x])[0]
                                            / sub.quant(sub.tensors[y])[0]}):
            continue
        for index, multiplier in plan.items():
            q = sub.tensors[index].quantization
            q.scale = (np.asarray(q.scale, np.float64) * multiplier).astype(np.float32)
        for consumer in sub.consumers(y):
            consumer.inputs = np.array([x if int(i) == y else int(i) for i in consumer.inputs],
                                       dtype=np.int32)
        sub.graph.operators = [o for o in sub.graph.operators if o is not op]
        removed += 1
    return removed


def _xnnpack_ops(sub, op, hard_swish, forms):
    """Returns ``(ops replacing op, or None; op to drop, or None)`` for ``op``, whose first input
    is int8, and notes in ``forms`` the hard-swish and exit-softmax forms it writes."""
    code = sub.op_code(op)
    if code == _OP.HARD_SWISH:
        forms["hard_swish"] = hard_swish
        return (_hard_swish_ops(sub, op) if hard_swish == "xnnpack" else None), None
    if code == _OP.AVERAGE_POOL_2D:
        return _average_pool_ops(sub, op), None
    if code in _FUSABLE_ACTIVATIONS:
        return _activation_ops(sub, op), None
    if code == _OP.ADD:
        return _add_constant_ops(sub, op), None
    if code == _OP.SOFTMAX:
        result = _float_softmax_ops(sub, op)
        if result is not None:
            forms["softmax"] = "float"
            return result
        if int(op.outputs[0]) in [int(t) for t in sub.graph.outputs]:
            forms["softmax"] = "int8"
    return None, None


def postprocess_tflite(tflite_model, hard_swish="xnnpack", fold_constants=True):
    """Returns the ``.tflite`` bytes with int8 ops XNNPACK skips rewritten as ops it runs.

    See the module docstring for the rewrites; none of them adds a float tensor between int8
    ends, so a model with int8 inputs and outputs stays integer-only. A model with int8
    activations comes back with the forms written recorded in its metadata (``written_forms``);
    a model without (float, dynamic-range) comes back unchanged, so the exporter can call it on
    every converted model.

    Args:
      tflite_model: the converted model (``bytes`` from ``TFLiteConverter.convert()``).
      hard_swish: ``"xnnpack"`` (default) rewrites int8 ``HARD_SWISH`` into MUL/ADD/MUL (ADD/MUL
        where ``fold_constants`` takes the ``x / 6`` MUL) so the graph stays one XNNPACK
        partition; ``"fused"`` keeps the ``HARD_SWISH`` op.
      fold_constants: remove each int8 MUL by a scalar constant whose factor the following
        ops can take into their scales (default True; False gives the graph of earlier
        versions, for comparison): the hard-swish ``x / 6`` (hard-swish becomes ADD(RELU6),
        MUL), the hard-sigmoid ``/ 6`` of squeeze-and-excite, the input ``Rescaling``'s
        ``x / 127.5`` (its ADD adds ``-127.5`` and the first convolution takes ``1 / 127.5``
        in its weight scales).

    Raises:
      ValueError: on an unknown ``hard_swish``.
    """
    check_hard_swish_form(hard_swish)
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite_model), 0)
    counts, forms, integer = {}, {"hard_swish": None, "softmax": None}, False
    for subgraph in model.subgraphs:
        sub = _Subgraph(model, subgraph)
        rewritten, dropped = [], []
        for op in subgraph.operators:
            new = None
            if len(op.inputs) and sub.tensors[int(op.inputs[0])].type == _INT8:
                integer = True
                new, drop = _xnnpack_ops(sub, op, hard_swish, forms)
                if drop is not None:
                    dropped.append(drop)
            if new is None:
                rewritten.append(op)
            else:
                name = _OP_NAMES[sub.op_code(op)]
                counts[name] = counts.get(name, 0) + 1
                rewritten.extend(new)
        subgraph.operators = [op for op in rewritten if all(op is not d for d in dropped)]
        folded = _fold_scalar_muls(sub) if fold_constants else 0
        if folded:
            counts["MUL folded"] = counts.get("MUL folded", 0) + folded
    if not integer:
        return bytes(tflite_model)
    log.info("postprocess_tflite rewrote %s; forms %s", counts, forms)
    _set_metadata(model, FORMS_METADATA, json.dumps(forms).encode())
    return _pack(model)


# Relative scale difference within which two int8 quantizations with the same zero point count
# as one: a DEQUANTIZE with one and a QUANTIZE with the other give back every int8 value
# (|q - zero_point| <= 255 and 255 * 1e-5 < 1/2 step), so int8 tensors pass between them as they
# are. (Converters calibrate the two ends of a model boundary separately and write scales that
# differ in the last float32 digits.)
SAME_SCALE_RTOL = 1e-5


def same_quantization(a, b):
    """Returns whether int8 quantizations ``a`` and ``b`` (``(scale, zero_point)``) have the same
    zero point and scales within ``SAME_SCALE_RTOL`` of each other."""
    return a[1] == b[1] and abs(a[0] - b[0]) <= SAME_SCALE_RTOL * max(a[0], b[0])


def _read_instead(sub, old, new):
    """Makes every op that reads tensor ``old`` read tensor ``new``."""
    for op in sub.graph.operators:
        op.inputs = np.array([new if t == old else t for t in op.inputs], dtype=np.int32)


def int8_interfaces(tflite_model, inputs=(), outputs=(), input_quantization=None):
    """Returns ``(tflite bytes, {output name: (scale, zero_point)})``: the model with the float
    signature inputs ``inputs`` and outputs ``outputs`` (signature names) made int8.

    An int8 graph quantizes a float input with a ``QUANTIZE`` op and dequantizes an int8 result
    into a float output with a ``DEQUANTIZE`` op. For the named ones the op goes and its int8
    tensor becomes the signature's input or output: chained models (early-exit stages) then hand
    int8 tensors on, without a float round trip (4x the bytes) between them. The returned dict
    gives each named output's quantization (``real = scale * (q - zero_point)``).

    Args:
      tflite_model: an int8 ``.tflite`` model with one signature.
      inputs: signature input names, each read only by ``QUANTIZE`` ops (one per quantization
        its readers take).
      outputs: signature output names, each written by a ``DEQUANTIZE``.
      input_quantization: ``{input name: (scale, zero_point)}``, the quantization of the int8
        tensors the caller will feed (the outputs of the model before; default: the first
        ``QUANTIZE``'s). A ``QUANTIZE`` to that quantization (``same_quantization``) goes; the
        others stay as int8-to-int8 requantizations from it.

    Raises:
      ValueError: a name that is not a signature input or output of that form.
    """
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite_model), 0)
    (signature,) = model.signatureDefs
    sub = _Subgraph(model, model.subgraphs[signature.subgraphIndex])
    graph = sub.graph
    input_maps = {_text(m.name): m for m in signature.inputs}
    output_maps = {_text(m.name): m for m in signature.outputs}
    input_quantization = dict(input_quantization or {})
    dropped = []
    for name in inputs:
        if name not in input_maps:
            raise ValueError(f"`inputs`: {name!r} is not a signature input; the inputs are "
                             f"{sorted(input_maps)}")
        tensor = input_maps[name].tensorIndex
        readers = sub.consumers(tensor)
        if (not readers or sub.tensors[tensor].type != _FLOAT32
                or any(sub.op_code(op) != _OP.QUANTIZE for op in readers)):
            raise ValueError(f"`inputs`: signature input {name!r} is not a float tensor read "
                             "only by QUANTIZE ops")
        fed = input_quantization.get(name, sub.quant(sub.tensors[int(readers[0].outputs[0])]))
        same = [op for op in readers
                if same_quantization(fed, sub.quant(sub.tensors[int(op.outputs[0])]))]
        if same:
            # The int8 input is that QUANTIZE's output, with its own scale: ops such as
            # CONCATENATION require it to equal theirs exactly.
            new_input = int(same[0].outputs[0])
            for op in same[1:]:
                _read_instead(sub, int(op.outputs[0]), new_input)
            dropped.extend(same)
        else:
            new_input = sub.add_tensor(sub.name(tensor, "/int8"), sub.tensors[tensor], _INT8,
                                       *fed)
        for op in readers:  # the others requantize the int8 input
            if all(op is not d for d in same):
                op.inputs = np.array([new_input], dtype=np.int32)
        graph.inputs = np.array([new_input if t == tensor else t for t in graph.inputs],
                                dtype=np.int32)
        input_maps[name].tensorIndex = new_input
    quantizations = {}
    for name in outputs:
        if name not in output_maps:
            raise ValueError(f"`outputs`: {name!r} is not a signature output; the outputs are "
                             f"{sorted(output_maps)}")
        tensor = output_maps[name].tensorIndex
        writers = [op for op in graph.operators if tensor in list(op.outputs)]
        if len(writers) != 1 or sub.op_code(writers[0]) != _OP.DEQUANTIZE:
            raise ValueError(f"`outputs`: signature output {name!r} is not written by a "
                             "DEQUANTIZE op")
        quantized = int(writers[0].inputs[0])
        if sub.tensors[quantized].type != _INT8:
            raise ValueError(f"`outputs`: signature output {name!r} dequantizes no int8 tensor")
        dropped.append(writers[0])
        graph.outputs = np.array([quantized if t == tensor else t for t in graph.outputs],
                                 dtype=np.int32)
        output_maps[name].tensorIndex = quantized
        quantizations[name] = sub.quant(sub.tensors[quantized])
    graph.operators = [op for op in graph.operators if all(op is not d for d in dropped)]
    _drop_unused_tensors(graph, signature)
    return _pack(model), quantizations


def _drop_unused_tensors(graph, signature):
    """Removes the tensors of ``graph`` that no op, graph input or output reads or writes, and
    renumbers the rest (in the ops, the graph and ``signature``)."""
    used = set(int(t) for t in graph.inputs) | set(int(t) for t in graph.outputs)
    for op in graph.operators:
        used.update(int(t) for t in op.inputs if t >= 0)  # -1: an optional input left out
        used.update(int(t) for t in op.outputs)
    new_index = {old: new for new, old in enumerate(sorted(used))}

    def renumber(indices):
        return np.array([new_index[int(t)] if t >= 0 else -1 for t in indices], dtype=np.int32)

    for op in graph.operators:
        op.inputs, op.outputs = renumber(op.inputs), renumber(op.outputs)
        if op.intermediates is not None and len(op.intermediates):
            op.intermediates = renumber(op.intermediates)
    graph.inputs, graph.outputs = renumber(graph.inputs), renumber(graph.outputs)
    for entry in list(signature.inputs) + list(signature.outputs):
        entry.tensorIndex = new_index[entry.tensorIndex]
    graph.tensors = [graph.tensors[old] for old in sorted(used)]


def written_forms(tflite_model):
    """Returns the int8 forms ``postprocess_tflite`` wrote into a ``.tflite`` model, or None.

    The dict (read from the model's ``kerasnets_int8_forms`` metadata) has ``"hard_swish"``:
    ``"xnnpack"`` (MUL/ADD/MUL, or ADD/MUL with the ``x / 6`` folded) or ``"fused"``
    (``HARD_SWISH``), and ``"softmax"``: ``"float"`` (the exit softmax after the last
    ``DEQUANTIZE``, float outputs) or ``"int8"`` (an int8 ``SOFTMAX`` gives the int8 output);
    each None when the model has no such op. None for a model ``postprocess_tflite`` did not
    write (float, dynamic-range, or converted elsewhere).

    Raises:
      ValueError: when ``tflite_model`` is not a TFLite flatbuffer.
    """
    raw = read_metadata(tflite_model, FORMS_METADATA)
    return None if raw is None else json.loads(raw.decode())


def _text(name):
    """Returns a flatbuffer string field as ``str`` (the object API reads bytes)."""
    return name.decode() if isinstance(name, bytes) else str(name)


def _set_metadata(model, name, data):
    """Stores ``data`` (bytes) as the metadata entry ``name`` of a ``schema.ModelT``."""
    values = np.frombuffer(data, dtype=np.uint8)
    for entry in model.metadata or []:
        if _text(entry.name) == name:
            model.buffers[entry.buffer].data = values
            return
    buffer = schema.BufferT()
    buffer.data = values
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers) - 1
    model.metadata = (model.metadata or []) + [entry]


def _pack(model):
    """Returns the ``.tflite`` bytes of a ``schema.ModelT``."""
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def add_metadata(tflite_model, name, data):
    """Returns the ``.tflite`` bytes with the metadata entry ``name`` holding ``data`` (bytes),
    replacing an entry of that name."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite_model), 0)
    _set_metadata(model, name, data)
    return _pack(model)


def read_metadata(tflite_model, name):
    """Returns the bytes of metadata entry ``name`` of a ``.tflite`` model, or None.

    Raises ``ValueError`` when the bytes are not a TFLite flatbuffer.
    """
    data = bytes(tflite_model)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError("not a TFLite model (no 'TFL3' flatbuffer identifier)")
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() is not None and entry.Name().decode() == name:
            return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    return None
