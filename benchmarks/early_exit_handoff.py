"""int8 early-exit stages: features handed on as int8 tensors (kerasnets' default) beside the
TFLite converter's own float feature inputs and outputs (a DEQUANTIZE at the end of a stage, a
QUANTIZE at the start of the next), in one run.

Exports the int8 stages of the reduced MSDNet of ``benchmarks/early_exit_eval.py`` both ways
(``kerasnets.export.stages.export_stages(..., int8_features=True | False)``, post-training,
calibrated on the embedded training images) and times every stage of both exports on the
embedded test images with ``StagedRuntime.run_all``, interleaved image by image (medians per
stage and of the all-stage sum; their ratio). Also prints how often the two exports give the
same class at each exit.

    python benchmarks/early_exit_handoff.py
    python benchmarks/early_exit_handoff.py --weights runs/ee_msdnet/final_weights.h5 --threads 2
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(argv=None):
    """Prints the table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, help="float weights of the reduced MSDNet (the "
                        "early_exit_eval checkpoint's final_weights.h5); default: random")
    parser.add_argument("--threads", type=int, default=1, help="(default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="passes over the 500 test images (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.rounds < 1:
        parser.error(f"--threads and --rounds must be >= 1; received {args.threads}, "
                     f"{args.rounds}")
    if args.weights is not None and not args.weights.is_file():
        parser.error(f"--weights: no file {str(args.weights)!r}")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from early_exit_eval import build_model

    from kerasnets import data
    from kerasnets._keras import keras
    from kerasnets.bench.local import host_cpu_line
    from kerasnets.export.stages import StagedRuntime, export_stages

    keras.utils.set_random_seed(0)
    model = build_model("msdnet", {}, 10)
    if args.weights is not None:
        model.load_weights(str(args.weights))
    train = data.load_image_folder(data.embedded_dataset("train"), 32, progress=False)
    test = data.load_image_folder(data.embedded_dataset("test"), 32, progress=False)
    calibration = data.preprocess(train.images[::max(1, len(train) // 200)], "cifar10")
    images = data.preprocess(test.images, "cifar10")
    forms = {"int8 features (kerasnets)": True, "float features (converter)": False}
    with tempfile.TemporaryDirectory() as tmp:
        runtimes = {}
        for name, int8_features in forms.items():
            manifest = export_stages(model, Path(tmp) / str(int8_features), "int8",
                                     preprocessing="cifar10", representative_images=calibration,
                                     int8_features=int8_features)
            runtimes[name] = StagedRuntime(manifest, num_threads=args.threads)
        probabilities = {name: rt.profile(images)[0] for name, rt in runtimes.items()}
        seconds = {name: [] for name in runtimes}
        for i in range(args.rounds * len(images)):
            order = list(runtimes) if i % 2 else list(runtimes)[::-1]
            for name in order:
                seconds[name].append(runtimes[name].run_all(images[i % len(images)])[1])
    print(host_cpu_line())
    print(f"reduced MSDNet ({'weights ' + str(args.weights) if args.weights else 'random weights'}"
          f"), int8 post-training, {args.threads} thread(s), {len(images)} embedded test images x "
          f"{args.rounds}, interleaved; medians in ms\n")
    stages = len(next(iter(seconds.values()))[0])
    print("| stages | " + " | ".join(f"stage {k + 1}" for k in range(stages)) + " | all stages |")
    print("|---|" + "---|" * (stages + 1))
    medians = {}
    for name, times in seconds.items():
        times = 1e3 * np.array(times)
        medians[name] = np.median(times.sum(axis=1))
        print(f"| {name} | " + " | ".join(f"{m:.4f}" for m in np.median(times, axis=0))
              + f" | {medians[name]:.4f} |")
    ours, peer = (medians[name] for name in forms)
    print(f"\nall stages, int8 features / float features: {ours / peer:.2f}")
    same = [float(np.mean(a.argmax(1) == b.argmax(1)))
            for a, b in zip(*(probabilities[name] for name in forms))]
    print("same class at each exit: " + ", ".join(f"{100 * s:.1f} %" for s in same))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
