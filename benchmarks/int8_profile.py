"""Where fp32 and int8 time goes, per op, with LiteRT + XNNPACK (issue 16 item 2).

    .venv/bin/python benchmarks/int8_profile.py                        # MobileNetV3-Small, 224
    .venv/bin/python benchmarks/int8_profile.py --model mobilenet_v3_large --threads 1
    .venv/bin/python benchmarks/int8_profile.py --method removal

LiteRT's Python interpreter has no per-op profiler, and XNNPACK runs the whole graph as one
delegate node, so op time is measured from outside, two ways.

``--method ops`` (default) times every op of the converted model on its own: a sub-graph that
holds the op once and a sub-graph that holds ``--copies`` copies of it (the same inputs, each
copy its own output), both run by XNNPACK and timed interleaved; the op's time is the median of
(copies - once) / (copies - 1), so the fixed cost of an invoke cancels. Ops are grouped by
type and geometry (``CONV_2D 3x3/s2``, ``DEPTHWISE_CONV_2D 5x5/s1``, ``MUL (hard-swish)``, ...);
the sum over ops is printed beside the whole model's time (they differ by what running the ops
one after another shares: caches, thread wake-ups).

``--method removal`` measures kinds of ops by removal: for each kind, the converted
model is rewritten without those ops (each removed op's consumers read its input instead;
shapes and dtypes stay, the values do not matter to the time) and timed interleaved with the
full model. The time of a kind is the median over runs of (the full model's time minus the
time without the kind), the two timed back to back. Kinds (classified from the graph, the
same for fp32 and int8):

- ends: the input QUANTIZE and the exit DEQUANTIZE/SOFTMAX (fp32: the SOFTMAX);
- input Rescaling: the MUL/ADD of the model's ``rescaling`` layer;
- hard-swish: HARD_SWISH, or its int8 form (MUL/ADD by constants, MUL of x and its gate);
- SE gate (1x1): element-wise ops on squeeze-and-excite's 1x1 tensors (the hard-sigmoid);
- SE scale: the broadcast MUL of a feature map by its squeeze-and-excite gate;
- residual ADD: the ADD of two feature maps;
- depthwise (stride 1): DEPTHWISE_CONV_2D whose output has its input's shape.

The rest (convolutions, stride-2 depthwise, MEAN, RESHAPE) is the full time minus the removed
kinds. XNNPACK drops ops whose results nothing reads: a removed SE scale leaves the SE branch
(MEAN, two 1x1 convolutions, the gate) without a reader, so "SE scale" is the whole
squeeze-and-excite; a removed residual ADD passes on the block's output, whose shortcut the
block still reads. Models are built as in
``int8_latency.py`` (random weights, BatchNorm statistics from real images), int8 twice: with
and without ``postprocess_tflite``'s constant folding.
"""

import argparse
import collections
import copy
import logging
import statistics
import sys
import time

import numpy as np
from ai_edge_litert import schema_py_generated as schema

try:  # run as a script: benchmarks/ is on sys.path
    import int8_latency
except ImportError:  # imported as benchmarks.int8_profile (the tests)
    from benchmarks import int8_latency

_OP = schema.BuiltinOperator
_NAMES = {v: k for k, v in vars(_OP).items() if not k.startswith("_")}
KINDS = ("ends", "input Rescaling", "hard-swish", "SE gate (1x1)", "SE scale", "residual ADD",
         "depthwise (stride 1)")


def _code(model, op):
    code = model.operatorCodes[op.opcodeIndex]
    return _NAMES[max(code.builtinCode, code.deprecatedBuiltinCode)]


def _is_constant(model, graph, index):
    data = model.buffers[graph.tensors[index].buffer].data
    return data is not None and len(data) > 0


def classify(model):
    """Returns ``{op position: kind}`` of the ops of the first subgraph that ``KINDS`` names."""
    graph = model.subgraphs[0]
    inputs = {int(i) for i in graph.inputs}
    kinds = {}
    for position, op in enumerate(graph.operators):
        code = _code(model, op)
        ins = [int(i) for i in op.inputs if i >= 0]
        out = graph.tensors[int(op.outputs[0])]
        name = out.name.decode() if isinstance(out.name, bytes) else str(out.name)
        shapes = [list(graph.tensors[i].shape) for i in ins]
        if code == "QUANTIZE" and ins[0] in inputs or code in ("DEQUANTIZE", "SOFTMAX"):
            kinds[position] = "ends"
        elif code in ("MUL", "ADD") and "rescaling" in name:
            kinds[position] = "input Rescaling"
        elif code in ("MUL", "ADD", "HARD_SWISH") and int(np.prod(out.shape[1:-1])) == 1:
            kinds[position] = "SE gate (1x1)"
        elif code == "MUL" and len({tuple(s) for s in shapes}) > 1 and not any(
                _is_constant(model, graph, i) for i in ins):
            kinds[position] = "SE scale"
        elif code == "ADD" and not any(_is_constant(model, graph, i) for i in ins):
            kinds[position] = "residual ADD"
        elif code in ("MUL", "ADD", "HARD_SWISH"):
            kinds[position] = "hard-swish"
        elif code == "DEPTHWISE_CONV_2D" and list(out.shape) == shapes[0]:
            kinds[position] = "depthwise (stride 1)"
    return kinds


def without(tflite_model, kind):
    """Returns ``(the .tflite bytes without the ops of kind, how many were removed)``."""
    from kerasnets.export.int8_forms import _pack

    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite_model), 0)
    graph = model.subgraphs[0]
    kinds = classify(model)
    replace, kept = {}, []
    producer = {int(t): position for position, op in enumerate(graph.operators)
                for t in op.outputs}
    for position, op in enumerate(graph.operators):
        op.inputs = np.array([replace.get(int(i), int(i)) for i in op.inputs], dtype=np.int32)
        if kinds.get(position) != kind:
            kept.append(op)
            continue
        out = int(op.outputs[0])
        if int(op.inputs[0]) in [int(i) for i in graph.inputs] and kind == "ends":
            graph.inputs = np.array([out], dtype=np.int32)  # the input QUANTIZE: int8 input
            continue
        if kind == "ends":  # the exit: its int8 (fp32: float) logits become the output
            replace[out] = int(op.inputs[0])
            continue
        same = [int(i) for i in op.inputs
                if i >= 0 and list(graph.tensors[int(i)].shape) == list(graph.tensors[out].shape)
                and not _is_constant(model, graph, int(i))]
        # XNNPACK drops ops whose results nothing reads: a residual ADD's consumers read the
        # block's output (the input produced last), whose shortcut the block still reads.
        same.sort(key=lambda t: producer.get(t, -1), reverse=True)
        replace[out] = same[0] if same else int(op.inputs[0])
    graph.outputs = np.array([replace.get(int(o), int(o)) for o in graph.outputs],
                             dtype=np.int32)
    removed = len(graph.operators) - len(kept)
    graph.operators = kept
    return _pack(model), removed


def profile(blob, threads, runs, warmup, x):
    """Returns ``(full ms, {kind: (ops, ms, fraction of full)})`` of one ``.tflite`` model.

    The time of a kind is the median over runs of (full model - model without the kind), both
    timed back to back in the same run: a load spike hits both sides of a difference."""
    variants = {kind: without(blob, kind) for kind in KINDS}
    present = [k for k in KINDS if variants[k][1]]
    samples = int8_latency.interleaved_samples(
        [blob] + [variants[k][0] for k in present], x, threads, runs, warmup)
    full = statistics.median(samples[0])
    result = {}
    for kind, times in zip(present, samples[1:]):
        ms = statistics.median(a - b for a, b in zip(samples[0], times))
        result[kind] = (variants[kind][1], ms, ms / full)
    return full, result


def single_op_model(tflite_model, position, copies=1):
    """Returns the ``.tflite`` bytes of op ``position`` of the first subgraph alone.

    Its non-constant inputs become the graph's inputs; ``copies`` copies of the op read them and
    each writes its own output (a copy of the op's output tensor, same shape and quantization),
    all of them graph outputs, so XNNPACK runs every copy."""
    from kerasnets.export.int8_forms import _pack

    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite_model), 0)
    graph = model.subgraphs[0]
    op = graph.operators[position]
    inputs = sorted({int(i) for i in op.inputs
                     if i >= 0 and not _is_constant(model, graph, int(i))})
    ops, outputs = [], []
    for _ in range(copies):
        twin = copy.deepcopy(op)
        graph.tensors.append(copy.deepcopy(graph.tensors[int(op.outputs[0])]))
        twin.outputs = np.array([len(graph.tensors) - 1], dtype=np.int32)
        ops.append(twin)
        outputs.append(len(graph.tensors) - 1)
    graph.operators = ops
    graph.inputs = np.array(inputs, dtype=np.int32)
    graph.outputs = np.array(outputs, dtype=np.int32)
    model.signatureDefs = []
    return _pack(model)


def op_label(model, position, kinds=None):
    """Returns the group an op is timed under: its type, with the kernel size and stride of a
    (depthwise) convolution and the ``classify`` kind of a MUL or ADD."""
    graph = model.subgraphs[0]
    op = graph.operators[position]
    name = _code(model, op)
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        _, kh, kw, _ = graph.tensors[int(op.inputs[1])].shape
        return f"{name} {kh}x{kw}/s{op.builtinOptions.strideH}"
    kind = (classify(model) if kinds is None else kinds).get(position)
    if name in ("MUL", "ADD") and kind is not None:
        return kind if name in kind else f"{name} ({kind})"
    return name


def _filled_interpreter(blob, threads, rng):
    from kerasnets.export.interpreter import load_interpreter

    interpreter = load_interpreter(blob, num_threads=threads)
    for detail in interpreter.get_input_details():
        if detail["dtype"] == np.int8:
            value = rng.integers(-128, 128, detail["shape"]).astype(np.int8)
        else:
            value = rng.normal(size=detail["shape"]).astype(detail["dtype"])
        interpreter.set_tensor(detail["index"], value)
    return interpreter


def per_op(tflite_model, threads, runs, warmup, copies=6):
    """Returns ``[(position, label, output shape, ms)]``: each op of the first subgraph timed
    on its own (``single_op_model`` with 1 and ``copies`` copies, interleaved, random inputs)."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite_model), 0)
    graph = model.subgraphs[0]
    kinds = classify(model)
    rng = np.random.default_rng(0)
    rows = []
    for position, op in enumerate(graph.operators):
        interpreters = [_filled_interpreter(single_op_model(tflite_model, position, n), threads,
                                            rng) for n in (1, copies)]
        samples = [[], []]
        for run in range(warmup + runs):
            for i, interpreter in enumerate(interpreters):
                start = time.perf_counter()
                interpreter.invoke()
                if run >= warmup:
                    samples[i].append((time.perf_counter() - start) * 1e3)
        ms = statistics.median((b - a) / (copies - 1) for a, b in zip(*samples))
        rows.append((position, op_label(model, position, kinds),
                     list(graph.tensors[int(op.outputs[0])].shape), ms))
    return rows


def format_per_op(results, full, top):
    """Returns the Markdown of ``per_op`` results: ``results`` and ``full`` (whole-model ms)
    are dicts by precision name."""
    names = list(results)
    groups = {n: collections.defaultdict(lambda: [0, 0.0]) for n in names}
    for n in names:
        for _, label, _, ms in results[n]:
            groups[n][label][0] += 1
            groups[n][label][1] += ms
    totals = {n: sum(ms for *_, ms in results[n]) for n in names}
    labels = sorted({label for n in names for label in groups[n]},
                    key=lambda label: -max(groups[n][label][1] for n in names))
    lines = ["| op | " + " | ".join(f"{n}: ops, ms (%)" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    lines.append("| whole model | " + " | ".join(
        f"{len(results[n])}, {full[n]:.3f}" for n in names) + " |")
    lines.append("| sum of the ops alone | " + " | ".join(
        f"{len(results[n])}, {totals[n]:.3f} (100%)" for n in names) + " |")
    for label in labels:
        cells = []
        for n in names:
            count, ms = groups[n][label] if label in groups[n] else (0, 0.0)
            cells.append("-" if not count else f"{count}, {ms:.3f} ({100 * ms / totals[n]:.0f}%)")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for n in names:
        lines += ["", f"{n}: the {top} slowest ops", "", "| op | position | output | ms |",
                  "|---|---|---|---|"]
        for position, label, shape, ms in sorted(results[n], key=lambda r: -r[3])[:top]:
            lines.append(f"| {label} | {position} | {'x'.join(map(str, shape[1:]))} | {ms:.3f} |")
    return "\n".join(lines)


def main(argv=None):
    """Prints the time table of fp32, int8 and int8 without folding (``--method``); returns 0,
    or exits with status 2 on a bad argument."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--model", default="mobilenet_v3_small")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--method", choices=("ops", "removal"), default="ops",
                        help="time each op on its own (default) or kinds of ops by removal")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--copies", type=int, default=6,
                        help="copies of an op in its timed sub-graph (--method ops; >= 2)")
    parser.add_argument("--top", type=int, default=10,
                        help="slowest ops listed per precision (--method ops)")
    parser.add_argument("--calibration", type=int, default=32)
    args = parser.parse_args(argv)
    for name, least in (("threads", 1), ("runs", 1), ("warmup", 0), ("copies", 2), ("top", 0),
                        ("calibration", 1), ("input_size", 32)):
        if getattr(args, name) < least:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)}: must be >= {least}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import kerasnets
    from kerasnets.bench.local import host_cpu_line
    from kerasnets.data import preprocessing_mode
    from kerasnets.export.interpreter import tflite_op_names
    from kerasnets.models.registry import get_entry

    if args.model not in kerasnets.list_models():
        parser.error(f"unknown --model {args.model!r}; known: {kerasnets.list_models()}")
    calibration = int8_latency.calibration_images(
        args.input_size, args.calibration, preprocessing_mode(get_entry(args.model)))
    model, _ = int8_latency.build_pair(args.model, args.input_size, calibration[:8])
    blobs = {}
    for precision in ("fp32", "int8"):
        blobs.update({k: v[0] for k, v in
                      int8_latency.convert_timed(model, precision, calibration).items()})
    names = list(blobs)
    if args.method == "ops":
        full = dict(zip(names, int8_latency.interleaved_medians(
            [blobs[n] for n in names], calibration[:1], args.threads, args.runs, args.warmup)))
        results = {n: per_op(blobs[n], args.threads, args.runs, args.warmup, args.copies)
                   for n in names}
        print(host_cpu_line())
        print(f"{args.model} {args.input_size}x{args.input_size}, {args.threads} thread(s), each "
              f"op timed alone (median of {args.runs} runs, {args.copies} copies against 1); ms "
              "(share of the sum)")
        print(format_per_op(results, full, args.top))
        return 0
    results = {name: profile(blob, args.threads, args.runs, args.warmup, calibration[:1])
               for name, blob in blobs.items()}
    print(host_cpu_line())
    print(f"{args.model} {args.input_size}x{args.input_size}, {args.threads} thread(s), "
          f"medians of {args.runs} interleaved runs; ms (share of the full model)")
    print("| kind | " + " | ".join(f"{n}: ops, ms (%)" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    print("| full model | " + " | ".join(
        f"{len(tflite_op_names(blobs[n]))}, {results[n][0]:.2f} (100%)" for n in names) + " |")
    for kind in KINDS:
        cells = []
        for n in names:
            entry = results[n][1].get(kind)
            cells.append("-" if entry is None else
                         f"{entry[0]}, {entry[1]:.2f} ({100 * entry[2]:.0f}%)")
        print(f"| {kind} | " + " | ".join(cells) + " |")
    rest = []
    for n in names:
        full_ms, kinds = results[n]
        removed = sum(v[1] for v in kinds.values())
        rest.append(f"-, {full_ms - removed:.2f} ({100 * (full_ms - removed) / full_ms:.0f}%)")
    print("| rest: conv, stride-2 depthwise, MEAN, RESHAPE | " + " | ".join(rest) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
