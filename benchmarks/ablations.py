"""Trains the MobileNet ablations of issue 17 on CIFAR-10 and prints one Markdown table: the
default network beside its ablated form, trained with the same recipe and seed.

Pairs (the builders' switches, ``kerasnets.create_model(..., **kwargs)``):

* ``v2_linear``: MobileNetV2 ``linear_bottleneck=True`` vs ``False`` (ReLU6 after every 1x1
  projection; Sandler et al. 2018, Fig. 6a).
* ``v3s_hswish``: MobileNetV3-Small hard-swish vs ``activation="relu"`` (Howard et al. 2019,
  Table 5).
* ``v3s_se``: MobileNetV3-Small ``se=True`` vs ``se=False`` (Howard et al. 2019, sec. 5.2).

Each run trains through ``kerasnets.training.fit.fit`` with the model family's recipe
(``kerasnets.training.recipes``; optimizer, schedule and weight decay) and CIFAR augmentation in its own checkpoint directory ``--work/<run>/``; a finished
run writes ``ablation.json`` there and later invocations read it instead of retraining, and
``--resume`` continues runs that were stopped. Each row: float top-1 on the test folder, params
and MACs (``kerasnets.models.profiler``), and the median fp32 / int8 TFLite latency on this
machine (``kerasnets.export.convert``, post-training int8 calibrated on ``--calibration``
training images; LiteRT with XNNPACK, ``kerasnets.bench.local``). A pair whose top-1 differ by
less than ``--close-margin`` points on every seed so far gets one more seed.

    python -m benchmarks.ablations --train-limit 500 --epochs 1 --out /tmp/ablations.md
"""

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from kerasnets import data
from kerasnets.bench.local import benchmark_local, host_cpu_line
from kerasnets.data import loader
from kerasnets.export.convert import convert
from kerasnets.models import profiler
from kerasnets.models.registry import create_model, get_entry
from kerasnets.training import recipes
from kerasnets.training.checkpoints import FINAL_WEIGHTS, AlreadyComplete
from kerasnets.training.fit import fit

LOG = logging.getLogger("ablations")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
RESULT = "ablation.json"

# name -> (registry model, default kwargs, ablated kwargs, the paper's claim). The claims are
# stated qualitatively: the papers' exact numbers were not found in the reference corpus.
PAIRS = {
    "v2_linear": ("mobilenet_v2", {}, {"linear_bottleneck": False},
                  "Sandler et al. 2018 Fig. 6a (ImageNet): the linear bottleneck trains to "
                  "higher top-1 than ReLU6 in the bottleneck; same params and MACs"),
    "v3s_hswish": ("mobilenet_v3_small", {}, {"activation": "relu"},
                   "Howard et al. 2019 Table 5 (ImageNet, phone latency): h-swish gives higher "
                   "top-1 than ReLU at a small latency cost"),
    "v3s_se": ("mobilenet_v3_small", {}, {"se": False},
               "Howard et al. 2019 (sec. 5.2 ablations): squeeze-and-excite raises top-1 for "
               "more params and a little latency"),
}


def run_name(model: str, kwargs: Dict, seed: int) -> str:
    """Returns the checkpoint-directory name of one run, e.g. ``mobilenet_v2-linear_bottleneck=False-s0``."""
    switches = "".join(f"-{k}={v}" for k, v in sorted(kwargs.items()))
    return f"{model}{switches}-s{seed}"


def _images(source: loader.DataSource, size: int, mode: str):
    """Returns ``(images, labels)``: every image of ``source`` resized and preprocessed."""
    xs, ys = [], []
    for x, y in loader.Input(source, size, mode, min(64, source.num_examples)).eval_dataset():
        xs.append(x.numpy())
        ys.append(np.argmax(y.numpy(), axis=-1))
    return np.concatenate(xs), np.concatenate(ys)


def _latency_ms(tflite_model: bytes, path: Path, threads: int, min_secs: float) -> float:
    path.write_bytes(tflite_model)
    timing = benchmark_local(path, threads, "xnnpack", runs=20, min_secs=min_secs,
                             warmup_min_secs=min(0.5, min_secs))
    return timing["median_us"] / 1000.0


def train_run(model: str, kwargs: Dict, seed: int, args: argparse.Namespace,
              train_source: loader.DataSource, test_source: loader.DataSource) -> Dict:
    """Returns the result dict of one run (model, kwargs, seed, top1 (0-1), params, macs,
    fp32_ms, int8_ms, epochs, input_size, train_images, test_images, threads, wall_s), read
    from ``ablation.json`` when the run finished earlier, else trained (resumed with
    ``args.resume``), measured and written there.

    Raises ``ValueError`` for a stopped run without ``args.resume``, or an ``ablation.json``
    measured with other settings."""
    run_dir = args.work / run_name(model, kwargs, seed)
    result_path = run_dir / RESULT
    setup = {"epochs": args.epochs, "input_size": args.input_size,
             "bn_momentum": args.bn_momentum, "train_images": train_source.num_examples,
             "test_images": test_source.num_examples, "threads": args.threads}
    if result_path.is_file():
        LOG.info("%s: finished earlier, reading %s", run_dir.name, result_path)
        result = json.loads(result_path.read_text())
        earlier = {k: result.get(k) for k in setup}
        if earlier != setup:
            raise ValueError(f"--work: {result_path} was measured with {earlier}, not {setup}; "
                             "give another --work directory for other settings")
        return result
    if run_dir.is_dir() and any(run_dir.iterdir()) and not args.resume:
        raise ValueError(f"--resume: {run_dir} holds a stopped run; pass --resume to continue it "
                         "(or remove the directory to start it again)")
    start = time.perf_counter()
    entry = get_entry(model)
    mode = data.preprocessing_mode(entry, kwargs)
    recipe = recipes.get_recipe(args.recipe or recipes.default_recipe(entry.family))
    # CIFAR's pad-and-crop augmentation for every run: the recipes' ImageNet random-resized
    # crop is meant for large photos, not 32x32 images upsampled.
    train_input = loader.Input(train_source, args.input_size, mode, args.batch_size,
                               augment="cifar", seed=seed, cache=True)
    try:
        trained = fit(model, train_input, test_source, recipe=recipe, epochs=args.epochs,
                      strategy="default", checkpoint_dir=run_dir,
                      resume=args.resume and (run_dir / "run.json").is_file(),
                      model_kwargs=kwargs, seed=seed, bn_momentum=args.bn_momentum,
                      verbose=2).model
    except AlreadyComplete:
        # Training finished but the measurements did not: rebuild from the final weights.
        trained = create_model(model, input_shape=(args.input_size, args.input_size, 3),
                               classes=train_source.num_classes,
                               weights=str(run_dir / FINAL_WEIGHTS), **kwargs)
    test_x, test_y = _images(test_source, args.input_size, mode)
    top1 = float(np.mean(np.argmax(trained.predict(test_x, batch_size=128, verbose=0), -1)
                         == test_y))
    calibration, _ = _images(loader.sample(train_source, args.calibration, seed),
                             args.input_size, mode)
    prof = profiler.profile(trained)
    result = {
        "model": model, "kwargs": kwargs, "seed": seed, "top1": top1,
        "params": prof.params, "macs": prof.macs,
        "fp32_ms": _latency_ms(convert(trained, "fp32"), run_dir / "fp32.tflite",
                               args.threads, args.latency_secs),
        "int8_ms": _latency_ms(convert(trained, "int8", calibration), run_dir / "int8.tflite",
                               args.threads, args.latency_secs),
        **setup, "wall_s": time.perf_counter() - start,
    }
    tmp = result_path.with_name(f".{RESULT}.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, result_path)
    return result


def run_pairs(args: argparse.Namespace) -> Dict[str, List[List[Dict]]]:
    """Returns ``{pair: [[default result, ablated result] per seed]}`` for ``args.pairs``,
    adding one seed to each pair closer than ``args.close_margin`` points on every seed."""
    train_source = loader.open_source(args.train)
    if args.train_limit is not None:
        train_source = loader.sample(train_source, args.train_limit, 0)
    test_source = loader.open_source(args.test)
    data.check_same_classes(train_source.class_names, test_source.class_names,
                            ("train", "test"))
    LOG.info("training on %d images, testing on %d", train_source.num_examples,
             test_source.num_examples)
    results = {}
    for pair in args.pairs:
        model, default, ablated, _ = PAIRS[pair]
        seeds = list(args.seeds)
        results[pair] = []
        while seeds:
            seed = seeds.pop(0)
            results[pair].append([train_run(model, kwargs, seed, args, train_source, test_source)
                                  for kwargs in (default, ablated)])
            close = all(abs(a["top1"] - b["top1"]) * 100 < args.close_margin
                        for a, b in results[pair])
            if not seeds and close and len(results[pair]) == len(args.seeds):
                seeds.append(max(args.seeds) + 1)
                LOG.info("%s: within %.1f points; adding seed %d", pair, args.close_margin,
                         seeds[0])
    return results


def _switches(kwargs: Dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "default"


def format_table(results: Dict[str, List[List[Dict]]]) -> str:
    """Returns the Markdown table of ``run_pairs``' results: a header naming this CPU and its
    int8 dot-product flags, one row per network (top-1 per seed and their mean)."""
    first = next(iter(results.values()))[0][0]
    lines = [
        f"{host_cpu_line()}. CIFAR-10, {first['train_images']:,} training images, "
        f"{first['epochs']} epochs at {first['input_size']}x{first['input_size']}"
        + (f", BatchNormalization momentum {first['bn_momentum']}"
           if first.get("bn_momentum") is not None else "")
        + f"; top-1 on {first['test_images']:,} test "
        "images; median latency of one image, LiteRT + XNNPACK, "
        f"{first['threads']} thread(s).",
        "",
        "| pair | network | top-1 % (per seed) | mean top-1 % | params | MACs | fp32 ms "
        "| int8 ms | paper's claim |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for pair, seeds in results.items():
        claim = PAIRS[pair][3]
        for i in (0, 1):
            runs = [s[i] for s in seeds]
            r = runs[0]
            per_seed = ", ".join(f"{100 * x['top1']:.2f} (s{x['seed']})" for x in runs)
            mean = 100 * statistics.mean(x["top1"] for x in runs)
            lines.append(
                f"| {pair} | {r['model']} {_switches(r['kwargs'])} | {per_seed} | {mean:.2f} | "
                f"{r['params']:,} | {r['macs'] / 1e6:.1f}M | "
                f"{statistics.median(x['fp32_ms'] for x in runs):.2f} | "
                f"{statistics.median(x['int8_ms'] for x in runs):.2f} | "
                f"{claim if i == 0 else ''} |")
    return "\n".join(lines)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Returns the parsed command line."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, default=SHARED / "train50k.zip",
                        help="training images: a folder <class>/*.jpg or a zip holding "
                             "train/<class>/*.jpg (default: ../shared/data/cifar10/train50k.zip)")
    parser.add_argument("--test", type=Path, default=SHARED / "test",
                        help="test folder <class>/*.jpg (default: ../shared/data/cifar10/test)")
    parser.add_argument("--pairs", "--models", nargs="+", default=list(PAIRS),
                        choices=list(PAIRS), help="pairs to run (default: all)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs (default: %(default)s)")
    parser.add_argument("--input-size", type=int, default=64,
                        help="image side the networks take (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=96,
                        help="batch size (MobileNetV2 sec. 6.1's 96; default: %(default)s)")
    parser.add_argument("--recipe", choices=recipes.list_recipes(), default=None,
                        help="training recipe (default: the model family's)")
    parser.add_argument("--bn-momentum", type=float, default=None, metavar="M",
                        help="BatchNormalization momentum of every run (fit's bn_momentum; "
                             "default: the builders' 0.999)")
    parser.add_argument("--train-limit", type=int, default=None, metavar="N",
                        help="train on a random subset of N images (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="seeds of every pair (default: 0)")
    parser.add_argument("--close-margin", type=float, default=1.0, metavar="POINTS",
                        help="add a seed to pairs closer than this many top-1 points "
                             "(0: never; default: %(default)s)")
    parser.add_argument("--calibration", type=int, default=300,
                        help="int8 calibration images (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1,
                        help="LiteRT threads for latency (default: %(default)s)")
    parser.add_argument("--latency-secs", type=float, default=3.0,
                        help="seconds of timed runs per model (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=Path("runs/ablations"),
                        help="checkpoint directories, one per run (default: %(default)s)")
    parser.add_argument("--resume", action="store_true",
                        help="continue stopped runs in --work (finished runs are always read "
                             "from their ablation.json)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    for name in ("epochs", "input_size", "batch_size", "train_limit", "calibration", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1; received {value}")
    if any(s < 0 for s in args.seeds):
        parser.error(f"--seeds must be >= 0; received {args.seeds}")
    if args.bn_momentum is not None and not 0 < args.bn_momentum < 1:
        parser.error(f"--bn-momentum must be in (0, 1); received {args.bn_momentum}")
    if args.close_margin < 0 or args.latency_secs <= 0:
        parser.error("--close-margin must be >= 0 and --latency-secs > 0")
    if args.train.suffix == ".zip" and args.train.is_file():
        args.train = data.ZipFolder(args.train, "train")
    elif not args.train.is_dir():
        parser.error(f"--train {args.train} must be a class folder or a zip of train/")
    if not args.test.is_dir():
        parser.error(f"--test {args.test} must be a class folder")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command line; returns the process exit code (2 for bad input, one line)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        table = format_table(run_pairs(args))
    except ValueError as err:
        print(f"ablations: error: {err}", file=sys.stderr)
        return 2
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
