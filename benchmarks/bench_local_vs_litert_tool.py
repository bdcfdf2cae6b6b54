"""Side by side: ``--target local`` timing against LiteRT's own benchmark tool.

    python benchmarks/bench_local_vs_litert_tool.py [MODEL.tflite ...] [--threads 1,2]

For each model and thread count, times the model with kerasnets.bench.local.benchmark_local
(Interpreter API, XNNPACK, in this process) and with
``python -m ai_edge_litert.tools.benchmark_litert_model`` (CompiledModel API, its own
process), both with the same exact warm-up and run counts, alternating the two ``--repeat``
times (a loaded machine drifts), and prints the median over repeats of each one's median and
average, and their ratio. Without models it converts keras.applications MobileNetV3Small and MobileNetV2
(random weights, 224x224, float32) to a temporary folder first.
"""

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from kerasnets.bench.local import benchmark_local

logger = logging.getLogger("bench_local_vs_litert_tool")


def convert_reference_models(folder):
    """Returns the paths of float32 .tflite files of two keras.applications models."""
    import tensorflow as tf

    from kerasnets._keras import keras

    paths = []
    for name, builder in (("mobilenet_v3_small", keras.applications.MobileNetV3Small),
                          ("mobilenet_v2", keras.applications.MobileNetV2)):
        model = builder(weights=None, input_shape=(224, 224, 3))
        path = Path(folder) / f"{name}_fp32.tflite"
        path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
        paths.append(path)
    return paths


def litert_tool(model, threads, runs, warmup, folder):
    """Returns the ``latency`` dict that benchmark_litert_model writes for one model."""
    out = Path(folder) / f"{model.stem}_{threads}.json"
    subprocess.run(
        [sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model", "--model",
         str(model), "--num_threads", str(threads), "--num_runs", str(runs), "--warmup_runs",
         str(warmup), "--result_json", str(out)],
        check=True, capture_output=True,
    )
    return json.loads(out.read_text())["latency"]


def main(argv=None):
    """Prints the comparison table; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--threads", default="1,2", help="comma-separated (default 1,2)")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="alternations of the two tools")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    threads_list = [int(t) for t in args.threads.split(",")]

    with tempfile.TemporaryDirectory() as folder:
        models = args.models or convert_reference_models(folder)
        print("| model | threads | local median ms | tool median ms | local/tool | "
              "local avg ms | tool avg ms |")
        print("|---|---|---|---|---|---|---|")
        for model in models:
            for threads in threads_list:
                ours, tool = [], []
                for _ in range(args.repeat):
                    latency = litert_tool(model, threads, args.runs, args.warmup, folder)
                    tool.append((latency["median_ms"], latency["avg_ms"]))
                    result = benchmark_local(model, threads, "xnnpack", runs=args.runs,
                                             warmup=args.warmup, min_secs=0, warmup_min_secs=0)
                    ours.append((result["median_us"] / 1000.0, result["avg_us"] / 1000.0))
                median, avg = (statistics.median(values) for values in zip(*ours))
                tool_median, tool_avg = (statistics.median(values) for values in zip(*tool))
                print(f"| {model.name} | {threads} | {median:.2f} | {tool_median:.2f} | "
                      f"{median / tool_median:.2f} | {avg:.2f} | {tool_avg:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
