"""Tests of ``--target local`` (LiteRT on this host) and of precision read from real conversions.

The independent references: the TFLite converter's own options decide each model's precision,
and LiteRT's ``ai_edge_litert.tools.benchmark_litert_model`` (CompiledModel API, separate
process) times the same model.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from kerasnets.bench import report
from kerasnets.cli import bench as bench_cli
from kerasnets.bench.local import benchmark_local
from kerasnets.bench.modelinfo import tflite_precision

pytestmark = pytest.mark.slow


def _tiny_net():
    from kerasnets._keras import keras, layers

    inputs = keras.Input((96, 96, 3))
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.Conv2D(64, 1, activation="relu")(x)
    x = layers.DepthwiseConv2D(3, strides=2, padding="same")(x)
    x = layers.Conv2D(128, 1, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10)(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Returns {precision the converter was asked for: .tflite path}."""
    import tensorflow as tf

    model = _tiny_net()
    folder = tmp_path_factory.mktemp("tflite")
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(8):
            yield [rng.uniform(-1, 1, (1, 96, 96, 3)).astype(np.float32)]

    def convert(name, configure):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        configure(converter)
        path = folder / f"tiny_{name}.tflite"
        path.write_bytes(converter.convert())
        return path

    def dynamic(converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def float16(converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]

    def int8(converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8

    return {
        "float32": convert("float32", lambda converter: None),
        "dynamic_int8": convert("dynamic", dynamic),
        "float16": convert("float16", float16),
        "int8": convert("int8", int8),
    }


def test_precision_of_converter_outputs(converted):
    for expected, path in converted.items():
        assert tflite_precision(path) == expected, path.name


def test_local_benchmark_statistics_are_consistent(converted):
    result = benchmark_local(converted["float32"], threads=1, delegate="xnnpack", runs=30,
                             warmup=3, min_secs=0, warmup_min_secs=0)
    assert result["count"] == 30 and result["warmup_count"] == 3
    assert result["min_us"] <= result["p5_us"] <= result["median_us"] <= result["p95_us"]
    assert result["p95_us"] <= result["max_us"]
    assert result["min_us"] <= result["avg_us"] <= result["max_us"]
    assert 0 <= result["std_us"] <= result["max_us"] - result["min_us"]
    assert result["init_us"] > 0 and result["first_us"] > 0
    assert result["memory_kind"] == "rss_delta" and result["memory_overall_mb"] is not None
    # benchmark_model's stopping rule: at least min_secs of runs even when runs is small.
    timed = benchmark_local(converted["float32"], threads=1, delegate="cpu", runs=1, warmup=0,
                            min_secs=0.2, warmup_min_secs=0)
    assert timed["count"] > 1 and timed["count"] * timed["avg_us"] >= 0.2e6 * 0.9
    with pytest.raises(ValueError, match="delegate='gpu'"):
        benchmark_local(converted["float32"], threads=1, delegate="gpu")


def test_local_agrees_with_litert_benchmark_tool(converted, tmp_path):
    model = converted["float32"]
    out = tmp_path / "tool.json"
    subprocess.run(
        [sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model", "--model",
         str(model), "--num_threads", "2", "--num_runs", "100", "--warmup_runs", "10",
         "--result_json", str(out)],
        check=True, capture_output=True, timeout=120,
    )
    tool = json.loads(out.read_text())["latency"]
    ours = benchmark_local(model, threads=2, delegate="xnnpack", runs=100, warmup=10,
                           min_secs=0, warmup_min_secs=0)
    assert tool["num_runs"] == ours["count"] == 100
    ratio = (ours["median_us"] / 1000.0) / tool["median_ms"]
    assert 0.5 < ratio < 2.0, (ours["median_us"], tool["median_ms"])


def test_local_target_command_line_and_report(converted, tmp_path, caplog):
    out = tmp_path / "local.jsonl"
    models = [str(converted["float32"]), str(converted["int8"])]
    status = bench_cli.main(models + [
        "--target", "local", "--out", str(out), "--threads", "1,2", "--delegate", "cpu",
        "--delegate", "xnnpack", "--delegate", "gpu", "--runs", "5", "--warmup", "1",
        "--min-secs", "0", "--warmup-min-secs", "0"])
    assert status == bench_cli.EXIT_RUN_FAILED  # gpu is not available on this host
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2 * 2 * 3
    for record in records:
        assert record["target"] == "local" and record["device"]["serial"] == "local"
        assert record["precision"] == ("int8" if "int8" in record["model_name"] else "float32")
        if record["delegate"] == "gpu":
            assert not record["ok"]
            assert "not available with --target local" in record["error"]
        else:
            assert record["ok"] and record["count"] == 5 and record["avg_us"] > 0
            # Each combination ran in its own process, which the record names.
            assert "-m kerasnets.bench.local" in record["command"]
            assert f'"threads": {record["threads"]}' in record["command"]
    assert "delegate='gpu' is not available" in caplog.text

    written = report.write_report([out], tmp_path / "report")
    rows = (tmp_path / "report" / "latency.csv").read_text().splitlines()
    assert len(rows) == 1 + 12
    assert written["latency_plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
