"""Running ``.tflite`` models with LiteRT (``ai_edge_litert.interpreter``): the one place
kerasnets builds an interpreter. Predictions, the ops of a graph, its XNNPACK partitions, the
dtypes of its tensors, and the accuracy/agreement of outputs."""

import collections

import numpy as np
from tqdm import tqdm


def load_interpreter(tflite_model, num_threads=2, delegates=True):
    """Returns a LiteRT ``Interpreter`` of ``tflite_model`` (bytes) with its tensors allocated.

    ``delegates=True`` applies LiteRT's default delegate (XNNPACK), as a deployed model runs;
    ``delegates=False`` runs the builtin kernels only, so the op list holds the model's own ops
    and no ``DELEGATE`` nodes.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs = {} if delegates else {
        "experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    interpreter = Interpreter(model_content=bytes(tflite_model), num_threads=num_threads, **kwargs)
    interpreter.allocate_tensors()
    return interpreter


def tflite_op_names(tflite_model):
    """Returns the builtin op names of a ``.tflite`` model, in execution order."""
    ops = load_interpreter(tflite_model, delegates=False)._get_ops_details()
    return [op["op_name"] for op in ops]


def op_histogram(tflite_model):
    """Returns ``{op name: count}`` of the builtin ops of a ``.tflite`` model (no delegation)."""
    return dict(sorted(collections.Counter(tflite_op_names(tflite_model)).items()))


def xnnpack_partitions(tflite_model, num_threads=2):
    """Returns how many XNNPACK partitions LiteRT makes of a ``.tflite`` model.

    Counts the ``DELEGATE`` nodes LiteRT's ``Interpreter`` (default XNNPACK delegate) reports
    after ``allocate_tensors``; 0 means XNNPACK took nothing. One partition means the whole
    graph is delegated when ``undelegated_ops`` is also empty (an op left at either end of the
    graph does not split it).
    """
    ops = load_interpreter(tflite_model, num_threads=num_threads)._get_ops_details()
    return sum(op["op_name"] == "DELEGATE" for op in ops)


def undelegated_ops(tflite_model, num_threads=2):
    """Returns the names of the ops XNNPACK leaves to LiteRT's own kernels, in graph order.

    LiteRT keeps the replaced nodes in its node list and appends one ``DELEGATE`` node per
    partition, whose inputs and outputs are the partition's boundary tensors. The ops of a
    partition are the producers reached walking back from its outputs without crossing its
    inputs; every other op runs outside XNNPACK.
    """
    ops = load_interpreter(tflite_model, num_threads=num_threads)._get_ops_details()
    originals = [op for op in ops if op["op_name"] != "DELEGATE"]
    producer = {int(t): op for op in originals for t in op["outputs"]}
    delegated = set()
    for partition in (op for op in ops if op["op_name"] == "DELEGATE"):
        boundary = {int(t) for t in partition["inputs"]}
        stack = [int(t) for t in partition["outputs"]]
        while stack:
            tensor = stack.pop()
            op = producer.get(tensor)
            if tensor in boundary or op is None or op["index"] in delegated:
                continue
            delegated.add(op["index"])
            stack += [int(t) for t in op["inputs"] if t >= 0]
    return [op["op_name"] for op in originals if op["index"] not in delegated]


def inner_tensor_dtypes(tflite_model):
    """Returns ``{tensor name: numpy dtype}`` of the tensors between the graph entry and exit.

    Leaves out the model's inputs and outputs and, behind a float32 output only, the float32
    tensors that reach it through ``DEQUANTIZE``/``SOFTMAX`` (a float-output int8 model's exit
    softmax runs in float: ``kerasnets.export.int8_forms``). Behind an int8 output nothing is
    left out, so a full-integer model gives only int8 and int32 tensors, and one with int8
    inputs and outputs is int8/int32 in every tensor.
    """
    interpreter = load_interpreter(tflite_model, delegates=False)
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    producers = {out: op for op in interpreter._get_ops_details() for out in op["outputs"]}
    edge = {d["index"] for d in interpreter.get_input_details()}
    stack = [d["index"] for d in interpreter.get_output_details()]
    while stack:
        index = stack.pop()
        edge.add(index)
        op = producers.get(index)
        if (np.dtype(details[index]["dtype"]) == np.float32 and op is not None
                and op["op_name"] in ("DEQUANTIZE", "SOFTMAX")):
            stack += [i for i in op["inputs"] if np.dtype(details[i]["dtype"]) == np.float32]
    return {t["name"]: np.dtype(t["dtype"]) for i, t in details.items() if i not in edge}


def tflite_predict(tflite_model, inputs, num_threads=2, progress=False):
    """Returns the float32 outputs of a ``.tflite`` model for a batch of preprocessed ``inputs``.

    Runs LiteRT's ``Interpreter`` one image at a time; int8 inputs are quantized and int8
    outputs dequantized with the model's own scales and zero points.
    """
    interpreter = load_interpreter(tflite_model, num_threads=num_threads)
    inputs_details, outputs_details = (interpreter.get_input_details(),
                                       interpreter.get_output_details())
    if len(inputs_details) != 1 or len(outputs_details) != 1:
        raise ValueError(
            f"tflite_predict runs single-input, single-output models; this one has "
            f"{len(inputs_details)} inputs and {len(outputs_details)} outputs"
        )
    (inp,), (out,) = inputs_details, outputs_details
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    results = []
    for x in tqdm(np.asarray(inputs, dtype="float32"), desc="TFLite inference", unit="img",
                  disable=None if progress else True, leave=False):
        if inp["dtype"] == np.int8:
            x = np.clip(np.round(x / in_scale + in_zero), -128, 127)
        interpreter.set_tensor(inp["index"], x[None].astype(inp["dtype"]))
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])[0]
        if out["dtype"] == np.int8:
            y = (y.astype("float32") - out_zero) * out_scale
        results.append(y.astype("float32"))
    return np.stack(results)


def top1(outputs):
    """Returns the top-1 class index of each row of ``outputs``."""
    return np.argmax(np.asarray(outputs).reshape(len(outputs), -1), axis=-1)


def accuracy(outputs, labels):
    """Returns the top-1 accuracy (0-1) of ``outputs`` against integer ``labels``."""
    return float(np.mean(top1(outputs) == np.asarray(labels)))


def agreement(outputs_a, outputs_b):
    """Returns the fraction (0-1) of images on which two models' top-1 classes agree."""
    return float(np.mean(top1(outputs_a) == top1(outputs_b)))
