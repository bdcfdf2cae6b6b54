"""Running ``.tflite`` models with LiteRT (``ai_edge_litert.interpreter``): predictions, op
counts, XNNPACK partitions, and the accuracy/agreement of their outputs."""

import collections

import numpy as np
from tqdm import tqdm


def _interpreter(tflite_model, num_threads=2, delegates=True):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs = {} if delegates else {
        "experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    interpreter = Interpreter(model_content=bytes(tflite_model), num_threads=num_threads, **kwargs)
    interpreter.allocate_tensors()
    return interpreter


def op_histogram(tflite_model):
    """Returns ``{op name: count}`` of the builtin ops of a ``.tflite`` model (no delegation)."""
    ops = _interpreter(tflite_model, delegates=False)._get_ops_details()
    return dict(sorted(collections.Counter(op["op_name"] for op in ops).items()))


def xnnpack_partitions(tflite_model, num_threads=2):
    """Returns the number of XNNPACK partitions LiteRT makes of the model (1 = fully delegated)."""
    ops = _interpreter(tflite_model, num_threads=num_threads)._get_ops_details()
    return sum(op["op_name"] == "DELEGATE" for op in ops)


def tflite_predict(tflite_model, inputs, num_threads=2, progress=False):
    """Returns the float32 outputs of a ``.tflite`` model for a batch of preprocessed ``inputs``.

    Runs LiteRT's ``Interpreter`` one image at a time; int8 inputs are quantized and int8
    outputs dequantized with the model's own scales and zero points.
    """
    interpreter = _interpreter(tflite_model, num_threads=num_threads)
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
