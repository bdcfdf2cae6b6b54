"""Which int8 ops split LiteRT's XNNPACK graph, and what int8 costs against float.

    python benchmarks/probe_xnnpack_int8.py patterns [--qat]
    python benchmarks/probe_xnnpack_int8.py registry [--models GLOB] [--qat]
    python benchmarks/probe_xnnpack_int8.py latency [--models mobilenet_v3_small,...]
        [--size 224] [--threads 2] [--runs 60]

``patterns``: each pattern of a MobileNetV3/DenseNet graph sits between two 1x1 convolutions of
a small 16x16x8 model (head patterns end the model), is converted to int8 after post-training
calibration on random data (``--qat``: after ``kerasnets.quantization.qat.quantize_model`` and one training
step), and is printed with its ops and the number of XNNPACK partitions LiteRT makes of it (the
``DELEGATE`` nodes; 1 = fully delegated), as converted and after
``kerasnets.export.int8_forms.postprocess_tflite``.

``registry``: every registered model (or those matching ``--models``) at its smallest input,
converted the same way, with its partitions and left-out ops before and after the rewrite.

``latency``: registered models (random weights), keras.applications.MobileNetV3Small (the
peer) and a control of four plain 1x1 convolutions (what int8 gains on this CPU at best) as
fp32, int8 as converted ("fused": ``HARD_SWISH`` kept) and int8 after ``postprocess_tflite``
("xnnpack"), all timed interleaved in one process with LiteRT's
``Interpreter`` (default XNNPACK), median of ``--runs`` runs after warm-up. With one thread the
time is the thread's CPU time, which a loaded machine disturbs less than wall time; with more
threads it is wall time. The load average is printed with the table: on a shared machine the
ratios are the signal, not the milliseconds.
"""

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("probe_xnnpack_int8")

PATTERN_SHAPE = (16, 16, 8)


def _layers():
    from kerasnets._keras import layers

    return layers


def _hard_swish(x):
    from kerasnets.layers import HardSwish

    return HardSwish()(x)


def _squeeze_excite(x):
    from kerasnets.layers import HardSigmoid

    layers = _layers()
    s = layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = layers.ReLU()(layers.Conv2D(4, 1)(s))
    s = HardSigmoid()(layers.Conv2D(x.shape[-1], 1)(s))
    return layers.Multiply()([x, s])


def _dense_layer(x):
    layers = _layers()
    y = layers.ReLU()(layers.BatchNormalization()(x))
    y = layers.Conv2D(8, 1, use_bias=False)(y)
    y = layers.ReLU()(layers.BatchNormalization()(y))
    y = layers.Conv2D(4, 3, padding="same", use_bias=False)(y)
    return layers.Concatenate()([x, y])


def _v3_head(x):
    layers = _layers()
    x = layers.GlobalAveragePooling2D(keepdims=True)(x)
    x = _hard_swish(layers.Conv2D(32, 1)(x))
    x = layers.Dropout(0.2)(x)
    x = layers.Flatten()(layers.Conv2D(10, 1)(x))
    return layers.Activation("softmax")(x)


def _relu_after_shared_add(x):
    layers = _layers()
    total = layers.Add()([x, layers.Conv2D(16, 1)(x)])
    return layers.Add()([total, layers.Conv2D(16, 1)(layers.ReLU()(total))])


def _conv_bn_relu(x):
    layers = _layers()
    x = layers.Conv2D(8, 3, padding="same", use_bias=False)(x)
    return layers.ReLU()(layers.BatchNormalization()(x))


def _pooled_head(x, softmax):
    layers = _layers()
    if softmax:
        x = layers.Dense(10)(layers.GlobalAveragePooling2D()(x))
        return layers.Activation("softmax")(x)
    x = layers.Conv2D(10, 1)(layers.GlobalAveragePooling2D(keepdims=True)(x))
    return layers.Flatten()(x)


def patterns():
    """Returns ``{name: (function of a Keras tensor, ends_model)}`` of the probed patterns."""
    from kerasnets.layers import HardSigmoid

    layers = _layers()
    return {
        "hard-swish (kerasnets HardSwish)": (_hard_swish, False),
        "hard-sigmoid (kerasnets HardSigmoid)": (lambda x: HardSigmoid()(x), False),
        "SE: GAP keepdims-conv-relu-conv-hsig-Multiply": (_squeeze_excite, False),
        "BN-ReLU after conv (folded)": (_conv_bn_relu, False),
        "DenseNet layer: BN-ReLU-conv x2, Concatenate": (_dense_layer, False),
        "standalone BN after AveragePooling2D": (
            lambda x: layers.BatchNormalization()(layers.AveragePooling2D(2)(x)), False),
        "AveragePooling2D(2) (DenseNet transition)": (
            lambda x: layers.AveragePooling2D(2)(x), False),
        "Xception: ReLU after an Add that also feeds the next Add": (
            _relu_after_shared_add, False),
        "ZeroPadding2D-MaxPooling2D(3, 2)": (
            lambda x: layers.MaxPooling2D(3, 2)(layers.ZeroPadding2D(1)(x)), False),
        "Rescaling(1/127.5, -1) at the input": (None, False),
        "GAP(keepdims)-conv-Flatten (no softmax)": (lambda x: _pooled_head(x, False), True),
        "GAP-Dense-Activation(softmax)": (lambda x: _pooled_head(x, True), True),
        "V3 head: GAP-conv-hswish-dropout-conv-flatten-softmax": (_v3_head, True),
    }


def pattern_model(function, ends_model):
    """Returns a small model: [Rescaling or conv] -> pattern -> conv (unless the pattern ends)."""
    from kerasnets._keras import keras

    layers = _layers()
    inputs = keras.Input(PATTERN_SHAPE)
    if function is None:
        x = layers.Conv2D(16, 3, padding="same")(layers.Rescaling(1 / 127.5, offset=-1.0)(inputs))
    else:
        x = function(layers.Conv2D(16, 1)(inputs))
    if not ends_model:
        x = layers.Conv2D(16, 1)(x)
    return keras.Model(inputs, x)


def convert_int8(model, samples):
    """Returns the full-int8 ``.tflite`` bytes of ``model`` (float I/O), calibrated on ``samples``,
    as the TFLite converter writes it (before ``postprocess_tflite``).

    Works for float models (post-training quantization) and QAT models alike; the TF 2.21
    converter only makes a QAT model fully int8 with a representative dataset (tensors inside a
    layer, e.g. in ``Rescaling`` or ``HardSigmoid``, carry no fake-quant ranges).
    """
    from kerasnets.export.convert import tflite_converter

    return tflite_converter(model, "int8", samples).convert()


def random_inputs(shape, count, seed=0, low=0.0, high=255.0):
    """Returns ``count`` float32 arrays of ``shape``, uniform in ``[low, high)``."""
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, (count,) + tuple(shape)).astype("float32")


def qat_model(model, samples):
    """Returns ``kerasnets.quantization.qat.quantize_model(model)`` after one training step on ``samples``."""
    from kerasnets.quantization.qat import quantize_model

    quantized = quantize_model(model)
    quantized.compile("adam", "mse")
    target = quantized.predict(samples, verbose=0)
    quantized.fit(samples, target, epochs=1, batch_size=len(samples), verbose=0)
    return quantized


def probe_patterns(qat=False):
    """Returns rows ``(pattern, ops, partitions, left out)`` as converted, then postprocessed."""
    from kerasnets.export.int8_forms import postprocess_tflite
    from kerasnets.export.interpreter import tflite_op_names, undelegated_ops, xnnpack_partitions

    samples = random_inputs(PATTERN_SHAPE, 8, low=-1.0, high=1.0)
    rows = []
    for name, (function, ends_model) in patterns().items():
        model = pattern_model(function, ends_model)
        if qat:
            model = qat_model(model, samples)
        converted = convert_int8(model, samples)
        rewritten = postprocess_tflite(converted)
        rows.append((
            name,
            _inner_ops(tflite_op_names(converted)), xnnpack_partitions(converted),
            " ".join(undelegated_ops(converted)) or "-",
            _inner_ops(tflite_op_names(rewritten)), xnnpack_partitions(rewritten),
            " ".join(undelegated_ops(rewritten)) or "-",
        ))
    return rows


def _inner_ops(ops):
    # The entry QUANTIZE and the exit DEQUANTIZE are in every model; show what lies between.
    if ops and ops[0] == "QUANTIZE":
        ops = ops[1:]
    if ops and ops[-1] == "DEQUANTIZE":
        ops = ops[:-1]
    return " ".join(ops)


def time_models(models, inputs, threads, runs, warmup=10):
    """Returns ``{name: median seconds}`` of LiteRT ``invoke`` for ``.tflite`` bytes, interleaved.

    Every round runs each model once, so machine load drifts hit all models alike. With one
    thread the clock is the thread's CPU time (XNNPACK runs on the calling thread), otherwise
    wall time.
    """
    from kerasnets.export.interpreter import load_interpreter

    clock = time.thread_time if threads == 1 else time.perf_counter
    interpreters = {}
    for name, tflite_model in models.items():
        interpreter = load_interpreter(tflite_model, num_threads=threads)
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], inputs.astype(detail["dtype"]))
        interpreters[name] = interpreter
    samples = {name: [] for name in models}
    for round_index in range(warmup + runs):
        for name, interpreter in interpreters.items():
            start = clock()
            interpreter.invoke()
            elapsed = clock() - start
            if round_index >= warmup:
                samples[name].append(elapsed)
    return {name: float(np.median(values)) for name, values in samples.items()}


CONTROL = "control:conv1x1x4"


def control_model(size):
    """Returns four 1x1 conv-ReLU layers of 128 channels at ``size / 4``: int8's pure-GEMM gain.

    No op here needs a rewrite, so its int8/fp32 ratio is what the CPU's int8 kernels give
    convolutions at best; a network's ratio is to be read against it.
    """
    from kerasnets._keras import keras

    layers = _layers()
    inputs = keras.Input((size // 4, size // 4, 128))
    x = inputs
    for _ in range(4):
        x = layers.Conv2D(128, 1, activation="relu")(x)
    return keras.Model(inputs, x, name="conv1x1x4")


def latency_rows(model_names, size, threads, runs):
    """Returns rows ``(model, threads, fp32 ms, int8 fused ms, int8 xnnpack ms, ratios, parts)``.

    ``parts`` reads "partitions (ops left out of XNNPACK)".
    """
    import kerasnets
    from kerasnets._keras import keras
    from kerasnets.export.convert import convert
    from kerasnets.export.int8_forms import postprocess_tflite
    from kerasnets.export.interpreter import undelegated_ops, xnnpack_partitions

    rows = []
    for name in model_names:
        calibration = random_inputs((size // 4, size // 4, 128) if name == CONTROL
                                    else (size, size, 3), 4)
        if name == CONTROL:
            model = control_model(size)
        elif name == "keras.applications.MobileNetV3Small":
            model = keras.applications.MobileNetV3Small(input_shape=(size, size, 3), weights=None)
        else:
            model = kerasnets.create_model(name, input_shape=(size, size, 3), weights=None)
        log.info("converting %s", name)
        int8 = convert_int8(model, calibration)
        forms = {
            "fp32": convert(model, "fp32"),
            "fused": postprocess_tflite(int8, hard_swish="fused"),
            "xnnpack": postprocess_tflite(int8, hard_swish="xnnpack"),
        }
        parts = {form: f"{xnnpack_partitions(b, threads)} ({len(undelegated_ops(b, threads))})"
                 for form, b in forms.items()}
        log.info("timing %s", name)
        medians = time_models(forms, calibration[:1], threads, runs)
        fp32 = medians["fp32"]
        rows.append((
            name, threads, 1000 * fp32, 1000 * medians["fused"], 1000 * medians["xnnpack"],
            medians["fused"] / fp32, medians["xnnpack"] / fp32, parts["fused"], parts["xnnpack"],
        ))
    return rows


def registry_rows(model_names, qat=False):
    """Returns rows ``(model, size, parts, left out)`` as converted, then postprocessed.

    Each registered model is built at its smallest input (random weights, 10 classes) and
    converted to int8 after post-training calibration (``qat``: after quantize_model and one
    training step) on two random images.
    """
    import collections

    import kerasnets
    from kerasnets.export.int8_forms import postprocess_tflite
    from kerasnets.export.interpreter import undelegated_ops, xnnpack_partitions
    from kerasnets.models.registry import get_entry

    def left_out(tflite_model):
        counts = collections.Counter(undelegated_ops(tflite_model))
        return " ".join(f"{op} x{n}" for op, n in sorted(counts.items())) or "-"

    rows = []
    for name in model_names:
        size = max(get_entry(name).min_size, 32)
        model = kerasnets.create_model(name, input_shape=(size, size, 3), weights=None,
                                       classes=10)
        samples = random_inputs((size, size, 3), 2)
        if qat:
            model = qat_model(model, samples)
        log.info("converting %s", name)
        converted = convert_int8(model, samples)
        rewritten = postprocess_tflite(converted)
        rows.append((name, size, xnnpack_partitions(converted), left_out(converted),
                     xnnpack_partitions(rewritten), left_out(rewritten)))
    return rows


def _print_table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        cells = [f"{c:.2f}" if isinstance(c, float) else str(c) for c in row]
        print("| " + " | ".join(cells) + " |")


def main(argv=None):
    """Runs the probe named on the command line; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("patterns", help="ops and XNNPACK partitions of int8 patterns")
    p.add_argument("--qat", action="store_true", help="quantization-aware models instead of "
                   "post-training quantization")
    reg = sub.add_parser("registry", help="XNNPACK partitions of every registered model's int8 "
                         "graph, before and after postprocess_tflite")
    reg.add_argument("--models", default="*", help="glob of registry names (default: all)")
    reg.add_argument("--qat", action="store_true", help="quantization-aware models instead of "
                     "post-training quantization")
    lat = sub.add_parser("latency", help="fp32 vs int8 latency of whole models")
    lat.add_argument("--models", default="mobilenet_v3_small,mobilenet_v3_large,"
                     f"keras.applications.MobileNetV3Small,mobilenet_v2,{CONTROL}",
                     help="comma-separated registry names, keras.applications.MobileNetV3Small "
                     f"(the peer) and/or {CONTROL} (four 1x1 convs: the CPU's int8 gain on "
                     "plain convolutions)")
    lat.add_argument("--size", type=int, default=224, help="input rows = cols (default 224)")
    lat.add_argument("--threads", default="2", help="comma-separated thread counts (default 2)")
    lat.add_argument("--runs", type=int, default=60, help="timed runs per model (default 60)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    log.setLevel(logging.INFO)
    if args.command == "patterns":
        kind = "QAT (kerasnets.quantization.qat.quantize_model)" if args.qat else "post-training int8"
        print(f"{kind}; parts = XNNPACK partitions (DELEGATE nodes), left out = ops XNNPACK "
              "does not take\n")
        _print_table(("pattern", "int8 ops as converted", "parts", "left out",
                      "after postprocess_tflite", "parts", "left out"),
                     probe_patterns(qat=args.qat))
        return 0
    if args.command == "registry":
        import kerasnets

        names = kerasnets.list_models(args.models)
        if not names:
            parser.error(f"--models {args.models!r} matches no registered model")
        kind = "QAT" if args.qat else "post-training int8"
        print(f"{kind}, smallest input, random weights; parts = XNNPACK partitions, left out = "
              "ops XNNPACK does not take\n")
        _print_table(("model", "input", "parts as converted", "left out",
                      "parts after postprocess_tflite", "left out"),
                     registry_rows(names, qat=args.qat))
        return 0
    if args.runs < 1 or args.size < 32:
        parser.error(f"--runs must be >= 1 and --size >= 32; received {args.runs}, {args.size}")
    try:
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        parser.error(f"--threads must be comma-separated integers; received {args.threads!r}")
    rows = []
    for count in threads:
        rows += latency_rows([m for m in args.models.split(",") if m], args.size, count, args.runs)
    print(f"\n{args.size}x{args.size}, random weights, LiteRT Interpreter + XNNPACK, median of "
          f"{args.runs}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
    _print_table(("model", "threads", "fp32 ms", "int8 fused ms", "int8 xnnpack ms",
                  "fused/fp32", "xnnpack/fp32", "fused parts (left out)",
                  "xnnpack parts (left out)"), rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
