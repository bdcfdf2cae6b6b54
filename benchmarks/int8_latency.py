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
what the TFLite converter gives. Weights are random (nothing is downloaded): latency does not
depend on their values.
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


def build_pair(name, size):
    """Returns ``(ours, keras twin or None)`` with identical weights."""
    import tf_keras

    import kerasnets
    from kerasnets.models.registry import get_entry

    entry = get_entry(name)
    ours = kerasnets.create_model(name, input_shape=(size, size, 3))
    if not entry.keras_twin:
        return ours, None
    twin = getattr(tf_keras.applications, entry.keras_twin)(
        input_shape=(size, size, 3), weights=None, **entry.keras_twin_kwargs)
    twin.set_weights(ours.get_weights())
    return ours, twin


def convert_timed(model, precision, calibration, hard_swish="xnnpack"):
    """Returns ``(tflite bytes, seconds)``."""
    from kerasnets.export.convert import convert

    start = time.perf_counter()
    blob = convert(model, precision, calibration if precision == "int8" else None,
                   hard_swish=hard_swish)
    return blob, time.perf_counter() - start


def interleaved_medians(blobs, x, threads, runs, warmup):
    """Returns the median invoke time (ms) of each ``.tflite`` in ``blobs``, timed interleaved."""
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
    return [statistics.median(s) for s in samples]


def run(models, size, threads_list, runs, warmup, calibration_count):
    """Returns the table rows (dicts) of the benchmark."""
    from kerasnets.data import preprocessing_mode
    from kerasnets.export.interpreter import xnnpack_partitions
    from kerasnets.models.registry import get_entry

    rows = []
    for name in models:
        mode = preprocessing_mode(get_entry(name))
        calibration = calibration_images(size, calibration_count, mode)
        ours, twin = build_pair(name, size)
        converted = {}
        for precision in ("fp32", "int8"):
            logging.info("converting %s %s", name, precision)
            converted[("ours", precision)] = convert_timed(ours, precision, calibration)
            if twin is not None:
                # The twin is converted as a user would, without our post-processing.
                converted[("keras", precision)] = _plain_convert(twin, precision, calibration)
        x = calibration[:1]
        for threads in threads_list:
            for precision in ("fp32", "int8"):
                who = ["ours"] + (["keras"] if twin is not None else [])
                blobs = [converted[(w, precision)][0] for w in who]
                medians = interleaved_medians(blobs, x, threads, runs, warmup)
                ours_blob = converted[("ours", precision)][0]
                row = {
                    "model": name, "precision": precision, "threads": threads,
                    "partitions": xnnpack_partitions(ours_blob, threads),
                    "size_mb": len(ours_blob) / 1e6, "ms_ours": medians[0],
                    "convert_s_ours": converted[("ours", precision)][1],
                    "partitions_keras": None, "ms_keras": None, "ratio": None,
                    "convert_s_keras": None,
                }
                if twin is not None:
                    keras_blob = converted[("keras", precision)][0]
                    row.update(partitions_keras=xnnpack_partitions(keras_blob, threads),
                               ms_keras=medians[1], ratio=medians[0] / medians[1],
                               convert_s_keras=converted[("keras", precision)][1])
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


def format_table(rows):
    """Returns the markdown table of ``rows``."""
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    lines = ["| model | precision | threads | partitions (ours / keras) | size MB | ms ours | "
             "ms keras.applications | ours/keras | int8/fp32 (ours) | convert s (ours / keras) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['threads']} | {r['partitions']} / "
            f"{num(r['partitions_keras'], 'd')} | {r['size_mb']:.1f} | {r['ms_ours']:.2f} | "
            f"{num(r['ms_keras'], '.2f')} | {num(r['ratio'], '.2f')} | "
            f"{r['int8_over_fp32']:.2f} | {r['convert_s_ours']:.1f} / "
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
    rows = run(args.models, args.input_size, threads, args.runs, args.warmup, args.calibration)
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
