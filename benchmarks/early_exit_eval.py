"""Early exits on CIFAR-10 with TFLite: accuracy, average MACs, average measured latency and the
exit histogram of the confidence-threshold policy over a threshold sweep and at thresholds
calibrated for latency budgets, beside running every stage and the full network.

    python benchmarks/early_exit_eval.py --data ../shared/data/cifar10 --epochs 2 \\
        --out out/early_exit

Trains a multi-exit model on ``--data``/train minus a held-out 10 % per class through
``kerasnets.training.fit.fit`` (recipe ``finetune``: Adam, cosine-decayed learning rate, CIFAR
augmentation; the joint loss with every exit weighted 1), exports it as TFLite stages (fp32, and
int8: QAT fine-tuned through ``fit`` too, or post-training with ``--qat-epochs 0``), runs every
stage on the held-out and test images with
LiteRT (per-image, per-stage times), calibrates thresholds on the held-out images for budgets of
a fraction of the all-stage latency, and reports on the test images. The policy's latency is
measured two ways: the sum of each image's measured stage times up to its exit (the sweep), and
end to end with the early-exit runtime, interleaved image by image with the all-stage run and the
single-file full network (the calibrated rows and the target check).

Writes ``report.json``, ``table.md`` and ``anytime.png`` (accuracy vs average latency) into
``--out``. The default network is a reduced MSDNet (5 exits, 13.7M MACs) that trains in minutes
on two CPU cores; ``--arch`` / ``--model-kwargs`` choose another (the paper's CIFAR MSDNet is
``--model-kwargs '{"blocks": 10, "step": 2, "base": 4, "stem_channels": 16,
"classifier_channels": 128}'``, 121M MACs).
"""

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("early_exit_eval")

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
# A reduced MSDNet: 5 blocks of 1 layer, growth 6, 12 first-layer maps, 48-map classifiers.
SMALL_MSDNET = {"blocks": 5, "step_mode": "even", "step": 1, "base": 1, "growth_rate": 6,
                "stem_channels": 12, "classifier_channels": 48}
ARCHS = ("msdnet", "densenet")
SWEEP = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
BUDGETS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
TARGET_LATENCY_RATIO = 0.6
TARGET_ACCURACY_DROP = 0.01
HOLDOUT_FRACTION = 0.1


def build_model(arch, model_kwargs, classes):
    """Returns the float multi-exit Keras model of ``arch`` ("msdnet" default kwargs:
    ``SMALL_MSDNET``) for ``classes`` classes.

    Raises:
      ValueError: an unknown ``arch``, or exits that output logits (``fit`` trains on the
        cross-entropy of probabilities).
    """
    from kerasnets.export.exit_policy import exit_outputs_are_probabilities
    from kerasnets.models.early_exit import MSDNetCifar, MultiExitDenseNetCifar

    if arch not in ARCHS:
        raise ValueError(f"--arch must be one of {ARCHS}; received {arch!r}")
    if arch == "msdnet":
        model = MSDNetCifar(classes=classes, **{**SMALL_MSDNET, **model_kwargs})
    else:
        model = MultiExitDenseNetCifar(classes=classes, **model_kwargs)
    if not exit_outputs_are_probabilities(model):
        raise ValueError("--model-kwargs: the exits must end in softmax (classifier_activation "
                         "'softmax'); the training loss reads probabilities")
    return model


def train_joint(model, image_set, mode, epochs, learning_rate, batch_size, seed, qat=False,
                strategy="default", recipe="finetune", checkpoint_dir=None, resume=False):
    """Returns the ``kerasnets.training.fit.FitResult`` of joint training on ``image_set``.

    ``fit`` with ``recipe`` (default ``finetune``: Adam, learning rate cosine-decayed from
    ``learning_rate`` or the recipe's, CIFAR augmentation): Keras applies its one cross-entropy
    to every exit with weight 1, i.e. the uniform joint loss of MSDNet
    (``kerasnets.training.early_exit``). ``model`` is a function that builds the model (inside
    the strategy's scope) or a model built under ``strategy``; ``qat`` trains its
    ``quantize_model`` form (``FitResult.model``). ``checkpoint_dir`` and ``resume`` are
    ``fit``'s (``AlreadyComplete`` when ``resume`` finds the run finished).
    """
    from kerasnets.data import loader
    from kerasnets.training.fit import fit

    train = loader.Input(loader.from_image_set(image_set), image_set.images.shape[1], mode,
                         batch_size, augment="cifar", seed=seed)
    return fit(model, train, recipe=recipe, epochs=epochs, learning_rate=learning_rate,
               strategy=strategy, qat=qat, seed=seed, checkpoint_dir=checkpoint_dir,
               resume=resume, verbose=2 if checkpoint_dir is not None else "auto")


def exit_accuracies(probabilities, labels):
    """Returns the top-1 accuracy (0-1) of each exit."""
    return [float(np.mean(np.argmax(p, axis=-1) == labels)) for p in probabilities]


def measured_policy_seconds(probabilities, seconds, thresholds):
    """Returns the per-image seconds of the policy: each image's measured stage times summed up
    to the exit the policy picks for it (``seconds``: ``(n, stages)`` from
    ``StagedRuntime.profile``)."""
    from kerasnets.export.exit_policy import exit_decisions

    exit_index, _, _ = exit_decisions(probabilities, thresholds)
    cumulative = np.cumsum(seconds, axis=1)
    return cumulative[np.arange(len(exit_index)), exit_index]


def full_network_tflite(model, precision, representative=None, qat_model=None):
    """Returns the ``.tflite`` bytes of the network up to its last exit only (no early heads)."""
    from kerasnets._keras import keras
    from kerasnets.export.convert import convert

    source = qat_model if qat_model is not None else model
    last = keras.Model(source.inputs, source.outputs[-1], name=source.name + "_last_exit")
    return convert(last, precision, representative)


def interleaved_latency(runtime, full_interpreter, images, thresholds):
    """Returns per-image seconds and outputs of three runs interleaved image by image, so that
    load drift on a shared machine hits them alike: the early-exit policy (``runtime.run``), all
    stages (threshold 1.0) and the single-file full network.

    Returns ``{"policy": s, "all_stages": s, "full_network": s, "predictions": p,
    "exits": e}``.
    """
    inp = full_interpreter.get_input_details()[0]["index"]
    out = full_interpreter.get_output_details()[0]["index"]
    policy, every, full, predictions, exits = [], [], [], [], []
    for i, image in enumerate(images):
        runs = ["policy", "all", "full"]
        for name in runs[i % 3:] + runs[:i % 3]:
            if name == "policy":
                result = runtime.run(image, thresholds)
                policy.append(result.seconds)
                predictions.append(result.prediction)
                exits.append(result.exit_index)
            elif name == "all":
                every.append(runtime.run(image, 1.0).seconds)
            else:
                start = time.perf_counter()
                full_interpreter.set_tensor(inp, image[None])
                full_interpreter.invoke()
                full_interpreter.get_tensor(out)
                full.append(time.perf_counter() - start)
    return {"policy": np.array(policy), "all_stages": np.array(every),
            "full_network": np.array(full), "predictions": np.array(predictions),
            "exits": np.array(exits)}


def _exit_report(runtime, test_y, test_probs, test_seconds):
    """Returns the per-exit part of a precision's report: accuracies, MACs and stage times."""
    stage_ms = 1e3 * np.median(test_seconds, axis=0)
    return {
        "exit_accuracy": exit_accuracies(test_probs, test_y), "stage_macs": runtime.macs,
        "cumulative_macs": np.cumsum(runtime.macs).tolist(),
        "stage_median_ms": stage_ms.tolist(),
        "cumulative_median_ms": np.cumsum(stage_ms).tolist(),
        # Exit k alone (anytime prediction): each image's stages 1..k, averaged.
        "cumulative_mean_ms": (1e3 * np.cumsum(test_seconds, axis=1).mean(axis=0)).tolist(),
        "all_stages_measured_ms": 1e3 * float(np.mean(test_seconds.sum(axis=1))),
    }


def _policy_row(test_probs, test_y, test_seconds, thresholds, macs):
    """Returns accuracy, average MACs, average measured ms and exit counts of ``thresholds`` on
    the test images."""
    from kerasnets.export.exit_policy import simulate_exits

    result = simulate_exits(test_probs, test_y, thresholds, macs)
    seconds = measured_policy_seconds(test_probs, test_seconds, thresholds)
    return {"accuracy": result.accuracy, "average_macs": result.average_cost,
            "average_ms": 1e3 * float(np.mean(seconds)),
            "exit_counts": list(result.exit_counts)}


def _calibrated_rows(held_probs, held_y, held_seconds, test_probs, test_y, test_seconds, macs):
    """Returns one row per ``BUDGETS`` fraction of the held-out all-stage latency: the thresholds
    calibrated on the held-out images, and what they do on the test images."""
    from kerasnets.export.exit_policy import calibrate_thresholds

    held_stage_s = np.median(held_seconds, axis=0)
    rows = []
    for fraction in BUDGETS:
        budget = fraction * float(held_stage_s.sum())
        if budget < held_stage_s[0]:
            # No policy is that cheap: the row shows the cheapest one, every image at exit 1.
            thresholds = [0.0] * (len(held_stage_s) - 1)
            method = "budget below exit 1's cost: all at exit 1"
            held_accuracy = exit_accuracies(held_probs[:1], held_y)[0]
        else:
            calibration = calibrate_thresholds(held_probs, held_y, held_stage_s, budget)
            thresholds, method = list(calibration.thresholds), calibration.method
            held_accuracy = calibration.held_out.accuracy
        rows.append({"budget_fraction": fraction, "thresholds": thresholds, "method": method,
                     "held_out_accuracy": held_accuracy,
                     **_policy_row(test_probs, test_y, test_seconds, thresholds, macs)})
    return rows


def _target_report(runtime, full_interpreter, test_x, test_y, test_probs, thresholds,
                   latency_images):
    """Returns the target check: the policy at ``thresholds`` run end to end on a random subset
    of the test images, interleaved with the all-stage run and the full network."""
    # A random subset: the image folders are sorted by class.
    timed_idx = np.sort(np.random.default_rng(0).permutation(len(test_x))[:latency_images])
    timed = interleaved_latency(runtime, full_interpreter, test_x[timed_idx], thresholds)
    policy_ms = 1e3 * float(np.mean(timed["policy"]))
    all_ms = 1e3 * float(np.mean(timed["all_stages"]))
    full_ms = 1e3 * float(np.mean(timed["full_network"]))
    accuracy = float(np.mean(timed["predictions"] == test_y[timed_idx]))
    last_accuracy = float(np.mean(np.argmax(test_probs[-1][timed_idx], -1) == test_y[timed_idx]))
    return {
        "thresholds": thresholds, "images": len(timed_idx),
        "policy_ms": policy_ms, "all_stages_ms": all_ms, "full_network_ms": full_ms,
        "latency_ratio": policy_ms / all_ms, "latency_ratio_vs_full_network": policy_ms / full_ms,
        "accuracy": accuracy, "last_exit_accuracy": last_accuracy,
        "accuracy_drop": last_accuracy - accuracy,
        "exit_counts": np.bincount(timed["exits"], minlength=runtime.num_exits).tolist(),
        "met": bool(policy_ms / all_ms <= TARGET_LATENCY_RATIO
                    and last_accuracy - accuracy <= TARGET_ACCURACY_DROP),
    }


def evaluate_precision(runtime, full_model, held, test, keras_probs, num_threads,
                       latency_images, progress):
    """Returns the report dict of one exported precision: per-exit accuracies, the threshold
    sweep, calibrated budgets and the target check (see the module docstring).

    ``keras_probs``: the per-exit outputs on the test images of the Keras model the stages were
    converted from (float, or QAT), or None (post-training int8 has no Keras twin).
    """
    from kerasnets.export.exit_policy import exit_decisions
    from kerasnets.export.interpreter import load_interpreter

    (held_x, held_y), (test_x, test_y) = held, test
    for _ in range(3):  # first invokes pack weights and allocate: not part of the latency
        runtime.run_all(test_x[0])
    held_probs, held_seconds = runtime.profile(held_x, progress=progress)
    test_probs, test_seconds = runtime.profile(test_x, progress=progress)
    macs = np.array(runtime.macs, dtype="float64")
    report = _exit_report(runtime, test_y, test_probs, test_seconds)
    report["sweep"] = [{"threshold": t, **_policy_row(test_probs, test_y, test_seconds, t, macs)}
                       for t in SWEEP]
    report["threshold_1_accuracy"] = report["sweep"][-1]["accuracy"]
    report["threshold_0_all_first"] = report["sweep"][0]["exit_counts"][0] == len(test_y)
    if keras_probs is not None:
        # Threshold 1.0 against the Keras model's last exit, image by image.
        _, predictions, _ = exit_decisions(test_probs, 1.0)
        keras_last = np.argmax(keras_probs[-1], -1)
        report["keras_last_exit_accuracy"] = float(np.mean(keras_last == test_y))
        report["threshold_1_agreement_with_keras_last_exit"] = float(np.mean(
            predictions == keras_last))
    report["calibrated"] = _calibrated_rows(held_probs, held_y, held_seconds, test_probs,
                                            test_y, test_seconds, macs)
    # The target: the policy calibrated for 60 % of the all-stage latency, run for real.
    target = next(c for c in report["calibrated"]
                  if c["budget_fraction"] == TARGET_LATENCY_RATIO)
    full_interpreter = load_interpreter(full_model, num_threads)
    full_predictions = _full_predictions(full_interpreter, test_x)
    report["target"] = _target_report(runtime, full_interpreter, test_x, test_y, test_probs,
                                      target["thresholds"], latency_images)
    report["full_network"] = {"accuracy": float(np.mean(full_predictions == test_y)),
                              "mean_ms": report["target"]["full_network_ms"]}
    return report


def _full_predictions(interpreter, images):
    """Returns the top-1 classes of the single-file full network on ``images``."""
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]
    predictions = []
    for image in images:
        interpreter.set_tensor(inp, image[None])
        interpreter.invoke()
        predictions.append(int(np.argmax(interpreter.get_tensor(out))))
    return np.array(predictions)


def _exit_table(report):
    """Returns the Markdown lines of the per-exit table."""
    lines = ["| exit | accuracy % | cumulative MACs (M) | cumulative median ms "
             "| cumulative mean ms |",
             "|---|---|---|---|---|"]
    for k, (acc, macs, median, mean) in enumerate(zip(
            report["exit_accuracy"], report["cumulative_macs"], report["cumulative_median_ms"],
            report["cumulative_mean_ms"]), start=1):
        lines.append(f"| {k} | {100 * acc:.2f} | {macs / 1e6:.2f} | {median:.3f} | {mean:.3f} |")
    return lines


def _policy_table(report):
    """Returns the Markdown lines of the policy table: the sweep, then the calibrated rows."""
    lines = ["| policy | accuracy % | avg MACs (M) | avg measured ms | ratio to all stages "
             "| exits |", "|---|---|---|---|---|---|"]
    all_ms = report["all_stages_measured_ms"]
    rows = [(f"threshold {row['threshold']:g}", row) for row in report["sweep"]]
    rows += [(f"calibrated {row['budget_fraction']:.0%} ({row['method']}: "
              + ", ".join(f"{t:.3f}" for t in row["thresholds"]) + ")", row)
             for row in report["calibrated"]]
    for label, row in rows:
        lines.append(f"| {label} | {100 * row['accuracy']:.2f} | "
                     f"{row['average_macs'] / 1e6:.2f} | {row['average_ms']:.3f} | "
                     f"{row['average_ms'] / all_ms:.2f} | {row['exit_counts']} |")
    return lines


def _summary_lines(report):
    """Returns the sentences on the full network, the target check and thresholds 1 and 0."""
    target, full = report["target"], report["full_network"]
    keras_part = ""
    if "keras_last_exit_accuracy" in report:
        keras_part = (f", Keras last exit {100 * report['keras_last_exit_accuracy']:.2f} %, same "
                      "prediction on "
                      f"{100 * report['threshold_1_agreement_with_keras_last_exit']:.2f} % of "
                      "the images")
    return [
        f"Full network (one file, last exit only): accuracy {100 * full['accuracy']:.2f} %, "
        f"{full['mean_ms']:.3f} ms.",
        f"Target (calibrated 60 %, run end to end on {target['images']} images, interleaved): "
        f"{target['policy_ms']:.3f} ms vs all stages {target['all_stages_ms']:.3f} ms "
        f"(ratio {target['latency_ratio']:.2f}; vs full network "
        f"{target['latency_ratio_vs_full_network']:.2f}), accuracy "
        f"{100 * target['accuracy']:.2f} % vs last exit {100 * target['last_exit_accuracy']:.2f} "
        f"% (drop {100 * target['accuracy_drop']:.2f} points): "
        f"{'MET' if target['met'] else 'NOT MET'}.",
        f"Threshold 1.0: accuracy {100 * report['threshold_1_accuracy']:.2f} %{keras_part}; "
        f"threshold 0 exits all at the first exit: {report['threshold_0_all_first']}.",
    ]


def format_table(name, report):
    """Returns the Markdown tables of one precision's report."""
    return "\n".join([f"### {name}", ""] + _exit_table(report) + [""] + _policy_table(report)
                     + [""] + _summary_lines(report))


def plot_anytime(reports, path):
    """Writes the PNG of accuracy vs average latency (the anytime curve) of each precision."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for (name, report), color in zip(reports.items(), ("tab:blue", "tab:orange", "tab:green")):
        sweep = report["sweep"]
        ax.plot([r["average_ms"] for r in sweep], [100 * r["accuracy"] for r in sweep], "o-",
                color=color, label=f"{name}: threshold sweep")
        ax.plot(report["cumulative_mean_ms"], [100 * a for a in report["exit_accuracy"]], "s--",
                color=color, alpha=0.6, label=f"{name}: exit k alone (anytime)")
        cal = report["calibrated"]
        ax.plot([r["average_ms"] for r in cal], [100 * r["accuracy"] for r in cal], "^",
                color=color, markersize=9, label=f"{name}: calibrated budgets")
        full = report["full_network"]
        ax.plot([full["mean_ms"]], [100 * full["accuracy"]], "*", color=color, markersize=14,
                label=f"{name}: full network")
    ax.set_xlabel("average latency per image (ms, LiteRT, measured per image)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("Early exits: accuracy vs average latency")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _load_data(args):
    """Returns ``(train, held-out, test)`` ``ImageSet`` objects of ``--data``: the held-out set is
    ``HOLDOUT_FRACTION`` of each training class."""
    from kerasnets import data

    train_dir = args.train or args.data / "train"
    test_dir = args.test or args.data / "test"
    data.check_same_classes(data.class_names(train_dir), data.class_names(test_dir))
    train_set = data.load_image_folder(train_dir, 32, args.train_per_class,
                                       progress=args.progress)
    test_set = data.load_image_folder(test_dir, 32, args.test_per_class,
                                      progress=args.progress)
    train_set, held_set = data.split_holdout(train_set, HOLDOUT_FRACTION, args.seed)
    log.info("%d training, %d held-out, %d test images", len(train_set), len(held_set),
             len(test_set))
    return train_set, held_set, test_set


def _train_float(args, model_kwargs, train_set, mode):
    """Returns the float model, initialized with ``--seed`` and trained for ``--epochs`` (0:
    left untrained); with ``--checkpoint-dir`` and ``--resume``, a stopped run continues and a
    finished one is read from its final weights."""
    from kerasnets._keras import keras
    from kerasnets.training.checkpoints import FINAL_WEIGHTS, AlreadyComplete

    classes = len(train_set.class_names)
    if not args.epochs:
        keras.utils.set_random_seed(args.seed)
        return build_model(args.arch, model_kwargs, classes)
    resume = args.resume and (args.checkpoint_dir / "run.json").is_file()
    try:
        return train_joint(lambda: build_model(args.arch, model_kwargs, classes), train_set,
                           mode, args.epochs, args.learning_rate, args.batch_size, args.seed,
                           recipe=args.recipe, checkpoint_dir=args.checkpoint_dir,
                           resume=resume).model
    except AlreadyComplete:
        log.info("training finished earlier: reading %s", args.checkpoint_dir / FINAL_WEIGHTS)
        model = build_model(args.arch, model_kwargs, classes)
        model.load_weights(str(args.checkpoint_dir / FINAL_WEIGHTS))
        return model


def _train_qat(args, model, train_set, mode):
    """Returns the QAT model of ``model`` fine-tuned for ``--qat-epochs`` on ``--qat-images``
    random training images, or None (``--qat-epochs 0``: post-training int8)."""
    if not args.qat_epochs:
        return None
    order = np.random.default_rng(args.seed).permutation(len(train_set))[:args.qat_images]
    subset = dataclasses.replace(train_set, images=train_set.images[order],
                                 labels=train_set.labels[order])
    return train_joint(model, subset, mode, args.qat_epochs, args.qat_learning_rate,
                       args.batch_size, args.seed, qat=True,
                       strategy=model.distribute_strategy).model


def _evaluate_export(args, out, name, model, qat_model, sets, calibration, reference):
    """Returns the report of one precision ``name``: its stages and full network exported
    into ``out / name`` and evaluated (``sets``: preprocessed held-out and test images with
    their labels)."""
    from kerasnets.export import write_atomic
    from kerasnets.export.stages import StagedRuntime, export_stages

    precision = "fp32" if name == "fp32" else "int8"
    representative = calibration if precision == "int8" else None
    log.info("exporting and evaluating %s", name)
    manifest = export_stages(model, out / name, precision, preprocessing=sets["mode"],
                             qat_model=qat_model, representative_images=representative)
    full_model = full_network_tflite(model, precision, representative, qat_model)
    write_atomic(out / name / "full_network.tflite", full_model)
    runtime = StagedRuntime(manifest, num_threads=args.threads)
    report = evaluate_precision(runtime, full_model, sets["held"], sets["test"], reference,
                                args.threads, args.latency_images, args.progress)
    log.info("\n%s", format_table(name, report))
    return report


def _write_outputs(args, out, report):
    """Writes ``table.md``, ``report.json`` and ``anytime.png`` into ``out``; returns the
    Markdown text (also printed)."""
    from kerasnets.export import write_atomic

    tables = "\n\n".join(format_table(n, r) for n, r in report["precisions"].items())
    header = (f"{report['model']} ({report['params']:,} params), {args.epochs} epochs on "
              f"{report['train_images']} images; Keras exit accuracies "
              f"{[round(100 * a, 2) for a in report['keras_exit_accuracy']]}; "
              f"{args.threads} thread(s); {report['wall_seconds']} s in all.")
    text = header + "\n\n" + tables
    write_atomic(out / "table.md", (text + "\n").encode())
    write_atomic(out / "report.json", (json.dumps(report, indent=2) + "\n").encode())
    plot_anytime(report["precisions"], out / "anytime.png")
    print(text)
    return text


def run(args):
    """Returns the full report (also written to ``--out``) of the evaluation."""
    from kerasnets import data
    from kerasnets.export import check_writable_dir
    from kerasnets.workflow import keras_predict

    out = check_writable_dir(args.out)
    start = time.perf_counter()
    model_kwargs = json.loads(args.model_kwargs)
    mode = "raw" if model_kwargs.get("include_preprocessing") else "cifar10"
    train_set, held_set, test_set = _load_data(args)
    model = _train_float(args, model_kwargs, train_set, mode)
    train_s = time.perf_counter() - start
    keras_probs = keras_predict(model, test_set, mode)
    report = {"arch": args.arch, "model": model.name, "model_kwargs": model_kwargs,
              "params": model.count_params(), "epochs": args.epochs,
              "train_images": len(train_set), "held_out_images": len(held_set),
              "test_images": len(test_set), "train_seconds": round(train_s, 1),
              "threads": args.threads,
              "keras_exit_accuracy": exit_accuracies(keras_probs, test_set.labels),
              "precisions": {}}
    sets = {"mode": mode, "held": (data.preprocess(held_set.images, mode), held_set.labels),
            "test": (data.preprocess(test_set.images, mode), test_set.labels)}
    calibration = data.preprocess(train_set.images[::max(1, len(train_set) // 200)], mode)
    exports = {"fp32": (None, keras_probs)}
    if args.int8:
        qat_model = _train_qat(args, model, train_set, mode)
        if qat_model is None:  # post-training int8 has no Keras twin to compare with
            exports["int8_ptq"] = (None, None)
        else:
            exports["int8_qat"] = (qat_model, keras_predict(qat_model, test_set, mode))
    for name, (qat_model, reference) in exports.items():
        report["precisions"][name] = _evaluate_export(args, out, name, model, qat_model, sets,
                                                      calibration, reference)
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    _write_outputs(args, out, report)
    return report


def build_parser():
    """Returns the ``argparse`` parser of the command line."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/early_exit_eval.py", description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 on success, 2 on bad input, 1 on other errors.")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with train/<class>/ and test/<class>/ images "
                             "(default: ../shared/data/cifar10)")
    parser.add_argument("--train", help="training images instead of <data>/train: an image "
                        "folder or ARCHIVE.zip[:FOLDER], e.g. train50k.zip")
    parser.add_argument("--test", help="test images instead of <data>/test (a folder or "
                        "ARCHIVE.zip[:FOLDER])")
    parser.add_argument("--arch", choices=ARCHS, default="msdnet",
                        help="msdnet (MSDNetCifar) or densenet (MultiExitDenseNetCifar)")
    parser.add_argument("--model-kwargs", default="{}",
                        help="JSON builder arguments (msdnet defaults: %s)"
                        % json.dumps(SMALL_MSDNET))
    parser.add_argument("--epochs", type=int, default=2,
                        help="training epochs (default: %(default)s)")
    parser.add_argument("--recipe", default="finetune",
                        help="kerasnets.training.recipes name of the float training "
                             "(default: %(default)s: Adam, cosine decay from 2e-3 at batch 64)")
    parser.add_argument("--learning-rate", type=float,
                        help="peak learning rate (default: the recipe's, scaled to the batch)")
    parser.add_argument("--checkpoint-dir", type=Path,
                        help="checkpoints and final weights of the float training (default: "
                             "none); with --resume a stopped run continues and a finished one "
                             "is read back instead of trained again")
    parser.add_argument("--resume", action="store_true",
                        help="continue (or read) the run in --checkpoint-dir")
    parser.add_argument("--batch-size", type=int, default=64, help="(default: %(default)s)")
    parser.add_argument("--train-per-class", type=int, help="only N training images per class")
    parser.add_argument("--test-per-class", type=int, help="only N test images per class")
    parser.add_argument("--no-int8", dest="int8", action="store_false",
                        help="fp32 stages only")
    parser.add_argument("--qat-epochs", type=int, default=1,
                        help="QAT fine-tuning epochs before int8 export; 0 for post-training "
                             "int8 (default: %(default)s)")
    parser.add_argument("--qat-images", type=int, default=2000,
                        help="training images QAT fine-tunes on (default: %(default)s)")
    parser.add_argument("--qat-learning-rate", type=float, default=2e-4,
                        help="(default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1,
                        help="LiteRT CPU threads (default: %(default)s)")
    parser.add_argument("--latency-images", type=int, default=500,
                        help="test images timed end to end, interleaved (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("out/early_exit"),
                        help="output folder (default: %(default)s)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bars")
    return parser


def main(argv=None):
    """Returns the exit status of the command line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "threads", "latency_images", "qat_images"):
        if getattr(args, name) < (0 if name == "epochs" else 1):
            parser.error(f"--{name.replace('_', '-')} must be positive; received "
                         f"{getattr(args, name)}")
    if args.qat_epochs < 0:
        parser.error(f"--qat-epochs must be >= 0; received {args.qat_epochs}")
    if args.resume and args.checkpoint_dir is None:
        parser.error("--resume continues the run in --checkpoint-dir; give --checkpoint-dir")
    try:
        kwargs = json.loads(args.model_kwargs)
    except json.JSONDecodeError as err:
        parser.error(f"--model-kwargs must be a JSON object: {err}")
    if not isinstance(kwargs, dict):
        parser.error(f"--model-kwargs must be a JSON object; received {args.model_kwargs}")
    from kerasnets.cli.common import call_reporting_errors, configure_logging

    configure_logging()
    return call_reporting_errors(log, run, args)[0]


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
