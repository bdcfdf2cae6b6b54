"""kerasnets vs keras.applications on LiteRT: fp32 and int8 latency, XNNPACK partitions, size,
and conversion time, measured side by side in one run.

    .venv/bin/python benchmarks/int8_latency.py                       # the MobileNets, 224x224
    .venv/bin/python benchmarks/int8_latency.py --models mobilenet_v3_small --runs 100

For each registered model (and its keras.applications twin, built with the same arguments and
the same weights) the script converts fp32 and post-training int8 (calibrated on real images of
the embedded CIFAR-10 subset, resized), then times all four interpreters on the same input,
interleaved run by run so that machine noise hits them alike: the median of ``--runs`` runs
after ``--warmup`` warm-up runs, for each thread count. kerasnets' int8 graphs go through
``kerasnets.export.int8_forms.postprocess_tflite`` (one XNNPACK partition); the twin's int8 graph is
what the TFLite converter gives. Weights are random (nothing is downloaded), with BatchNorm
statistics set from the calibration images so that activations have a trained network's
ranges (``set_batchnorm_statistics``): latency does not depend on the values, but the int8
graph's ops depend on the ranges. ``int8-unfolded`` rows time the same int8 conversion without
``postprocess_tflite``'s constant folding (issue 16), interleaved with the folded one.

The physical limit beside every model: for each thread count the script also times a plain
stack of 1x1 convolutions (``peak_stack``: 8 x Conv2D(128, 1) on 56x56x128, 411M MACs) in
fp32 and in integer-only int8, interleaved the same way, and prints each model's achieved
MACs/s (MACs from ``kerasnets.models.profiler``) as a fraction of that peak. The table header
names the CPU, its int8 dot-product flags from /proc/cpuinfo (``avx512_vnni``, ``avx_vnni``,
``asimddp``, ``i8mm``) and the load average: a latency means little without the machine it
ran on.
"""

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_MODELS = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")


def calibration_images(size, count, mode):
    """Returns ``count`` real images of the embedded dataset, resized and preprocessed."""
    from kerasnets import data

    images = data.load_image_folder(data.embedded_dataset("train"), size, per_class=None,
                                    progress=False).images
    rng = np.random.default_rng(0)
    picked = images[rng.choice(len(images), size=count, replace=False)]
    return data.preprocess(picked.astype("float32"), mode)


def set_batchnorm_statistics(model, images):
    """Sets every BatchNormalization layer's moving mean and variance to the statistics of its
    input on ``images``, layer after layer; returns ``model``.

    Random initial weights leave BatchNorm an identity, and activations shrink to ~1e-7 deep
    in a MobileNet: the int8 converter then quantizes hard-swish as ``x / 2`` (one op, see
    ``kerasnets.export.int8_forms``) where a trained network has ranges of a few units and the
    full ADD/MUL form. With these statistics every BatchNorm output has zero mean and unit
    variance, as in training, and the int8 graph has a trained network's ops.
    """
    from kerasnets._keras import keras, layers

    for layer in model.layers:
        if not isinstance(layer, layers.BatchNormalization):
            continue
        x = keras.Model(model.inputs, layer.input)(images, training=False).numpy()
        axes = tuple(range(x.ndim - 1))
        gamma, beta, _, _ = layer.get_weights()
        layer.set_weights([gamma, beta, x.mean(axis=axes), x.var(axis=axes)])
    return model


def build_pair(name, size, images):
    """Returns ``(ours, keras twin or None)`` with identical weights, BatchNorm statistics set
    from ``images`` (``set_batchnorm_statistics``)."""
    import tf_keras

    import kerasnets
    from kerasnets.models.registry import get_entry

    entry = get_entry(name)
    ours = set_batchnorm_statistics(kerasnets.create_model(name, input_shape=(size, size, 3)),
                                    images)
    if not entry.keras_twin:
        return ours, None
    twin = getattr(tf_keras.applications, entry.keras_twin)(
        input_shape=(size, size, 3), weights=None, **entry.keras_twin_kwargs)
    twin.set_weights(ours.get_weights())
    return ours, twin


def convert_timed(model, precision, calibration, hard_swish="xnnpack"):
    """Returns ``{variant: (tflite bytes, seconds)}``: ``"fp32"``, or for int8 ``"int8"`` (every
    kerasnets rewrite) and ``"int8-unfolded"`` (the same converter output, constant factors not
    folded: ``postprocess_tflite(fold_constants=False)``, the graph before issue 16)."""
    from kerasnets.export.convert import convert, tflite_converter
    from kerasnets.export.int8_forms import postprocess_tflite

    start = time.perf_counter()
    if precision == "fp32":
        return {"fp32": (convert(model, "fp32"), time.perf_counter() - start)}
    raw = tflite_converter(model, "int8", calibration).convert()
    seconds = time.perf_counter() - start
    return {
        "int8": (postprocess_tflite(raw, hard_swish=hard_swish), seconds),
        "int8-unfolded": (postprocess_tflite(raw, hard_swish=hard_swish, fold_constants=False),
                          seconds),
    }


def interleaved_medians(blobs, x, threads, runs, warmup):
    """Returns the median invoke time (ms) of each ``.tflite`` in ``blobs``, timed interleaved."""
    return [statistics.median(s) for s in interleaved_samples(blobs, x, threads, runs, warmup)]


def interleaved_samples(blobs, x, threads, runs, warmup):
    """Returns the ``runs`` invoke times (ms) of each ``.tflite`` in ``blobs``: run ``r`` of
    every model is timed one after the other, so sample ``r`` of each saw the same load."""
    from kerasnets.export.interpreter import load_interpreter

    interpreters = []
    for blob in blobs:
        interpreter = load_interpreter(blob, num_threads=threads)
        detail = interpreter.get_input_details()[0]
        sample = x
        if detail["dtype"] == np.int8:
            scale, zero = detail["quantization"]
            sample = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(detail["index"], sample)
        interpreters.append(interpreter)
    for _ in range(warmup):
        for interpreter in interpreters:
            interpreter.invoke()
    samples = [[] for _ in interpreters]
    for _ in range(runs):
        for i, interpreter in enumerate(interpreters):
            start = time.perf_counter()
            interpreter.invoke()
            samples[i].append((time.perf_counter() - start) * 1e3)
    return samples


def peak_stack(layers_count=8, size=56, channels=128):
    """Returns a float Keras model of ``layers_count`` 1x1 convolutions (``channels`` in and
    out, no activation) on a ``size x size x channels`` input: dense GEMM work, the CPU's
    best case for both fp32 and int8."""
    from kerasnets._keras import keras, layers

    keras.utils.set_random_seed(0)
    inputs = layers.Input((size, size, channels))
    x = inputs
    for i in range(layers_count):
        x = layers.Conv2D(channels, 1, name=f"peak_conv{i}")(x)
    return keras.Model(inputs, x, name="peak_stack")


def measure_peaks(threads_list, runs, warmup):
    """Returns ``{(precision, threads): MACs per second}`` of ``peak_stack`` with XNNPACK.

    int8 is integer-only (``int8_io``), so no QUANTIZE/DEQUANTIZE work is timed."""
    from kerasnets.export.convert import convert
    from kerasnets.models.profiler import profile

    model = peak_stack()
    macs = profile(model).macs
    x = np.random.default_rng(0).normal(size=(16,) + model.input_shape[1:]).astype("float32")
    blobs = [convert(model, "fp32"), convert(model, "int8", x, int8_io=True)]
    peaks = {}
    for threads in threads_list:
        fp32_ms, int8_ms = interleaved_medians(blobs, x[:1], threads, runs, warmup)
        peaks[("fp32", threads)] = macs / (fp32_ms / 1e3)
        peaks[("int8", threads)] = macs / (int8_ms / 1e3)
    return peaks


def run(models, size, threads_list, runs, warmup, calibration_count, peaks):
    """Returns the table rows (dicts) of the benchmark; ``peaks`` is ``measure_peaks``'s."""
    from kerasnets.data import preprocessing_mode
    from kerasnets.export.interpreter import xnnpack_partitions
    from kerasnets.models.profiler import profile
    from kerasnets.models.registry import get_entry

    rows = []
    for name in models:
        mode = preprocessing_mode(get_entry(name))
        calibration = calibration_images(size, calibration_count, mode)
        ours, twin = build_pair(name, size, calibration[:8])
        macs = profile(ours).macs
        converted = {}
        for precision in ("fp32", "int8"):
            logging.info("converting %s %s", name, precision)
            for variant, result in convert_timed(ours, precision, calibration).items():
                converted[("ours", variant)] = result
            if twin is not None:
                # The twin is converted as a user would, without our post-processing.
                converted[("keras", precision)] = _plain_convert(twin, precision, calibration)
        x = calibration[:1]
        for threads in threads_list:
            for variants in (["fp32"], ["int8", "int8-unfolded"]):
                keys = [("ours", v) for v in variants]
                if twin is not None:
                    keys.append(("keras", variants[0]))
                medians = dict(zip(keys, interleaved_medians(
                    [converted[k][0] for k in keys], x, threads, runs, warmup)))
                for variant in variants:
                    ours_blob, convert_s = converted[("ours", variant)]
                    ms = medians[("ours", variant)]
                    peak = peaks[(variants[0], threads)]
                    row = {
                        "model": name, "precision": variant, "threads": threads,
                        "partitions": xnnpack_partitions(ours_blob, threads),
                        "size_mb": len(ours_blob) / 1e6, "ms_ours": ms,
                        "convert_s_ours": convert_s, "macs": macs,
                        "peak_fraction": macs / (ms / 1e3) / peak,
                        "partitions_keras": None, "ms_keras": None, "ratio": None,
                        "convert_s_keras": None,
                    }
                    if twin is not None:
                        keras_blob, keras_s = converted[("keras", variants[0])]
                        row.update(partitions_keras=xnnpack_partitions(keras_blob, threads),
                                   ms_keras=medians[("keras", variants[0])],
                                   ratio=ms / medians[("keras", variants[0])],
                                   convert_s_keras=keras_s)
                    rows.append(row)
        fp32 = {r["threads"]: r["ms_ours"] for r in rows
                if r["model"] == name and r["precision"] == "fp32"}
        for r in rows:
            if r["model"] == name:
                r["int8_over_fp32"] = r["ms_ours"] / fp32[r["threads"]]
    return rows


def _plain_convert(model, precision, calibration):
    """Returns ``(bytes, seconds)`` of the plain ``TFLiteConverter.from_keras_model`` path (fp32,
    or full-integer int8 calibrated on ``calibration``)."""
    import tensorflow as tf

    start = time.perf_counter()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([s[None]] for s in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    blob = converter.convert()
    return blob, time.perf_counter() - start


def format_header(peaks):
    """Returns the lines above the table: the CPU, its int8 flags, the load average, and the
    ``peak_stack`` peaks (GMAC/s) per precision and thread count."""
    from kerasnets.bench.local import host_cpu_line

    threads = sorted({t for _, t in peaks})
    peak_text = "; ".join(
        f"{t} thread{'s' if t > 1 else ''}: fp32 {peaks[('fp32', t)] / 1e9:.1f}, "
        f"int8 {peaks[('int8', t)] / 1e9:.1f} "
        f"(int8/fp32 {peaks[('int8', t)] / peaks[('fp32', t)]:.2f}x)"
        for t in threads)
    return [host_cpu_line(),
            f"Peak (1x1-conv stack, XNNPACK), GMAC/s: {peak_text}"]


def format_table(rows):
    """Returns the markdown table of ``rows``."""
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    lines = ["| model | precision | threads | partitions (ours / keras) | size MB | ms ours | "
             "ms keras.applications | ours/keras | int8/fp32 (ours) | GMAC/s (% of peak) | "
             "convert s (ours / keras) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['threads']} | {r['partitions']} / "
            f"{num(r['partitions_keras'], 'd')} | {r['size_mb']:.1f} | {r['ms_ours']:.2f} | "
            f"{num(r['ms_keras'], '.2f')} | {num(r['ratio'], '.2f')} | "
            f"{r['int8_over_fp32']:.2f} | {r['macs'] / r['ms_ours'] / 1e6:.1f} "
            f"({100 * r['peak_fraction']:.0f}%) | {r['convert_s_ours']:.1f} / "
            f"{num(r['convert_s_keras'], '.1f')} |")
    return "\n".join(lines)


def main(argv=None):
    """Runs the benchmark and prints the table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                        help="registered model names (default: %(default)s)")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--runs", type=int, default=60, help="timed runs per model (>= 50)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--calibration", type=int, default=64, help="calibration images")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import kerasnets

    unknown = [m for m in args.models if m not in kerasnets.list_models()]
    if unknown:
        parser.error(f"unknown --models {unknown}; known: {kerasnets.list_models()}")
    threads = [int(t) for t in args.threads.split(",")]
    peaks = measure_peaks(threads, args.runs, args.warmup)
    rows = run(args.models, args.input_size, threads, args.runs, args.warmup, args.calibration,
               peaks)
    # The load average is read after the runs: the figure that covers them.
    print("\n".join(format_header(peaks)))
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
