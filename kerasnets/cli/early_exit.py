"""Evaluate early-exit TFLite stages on an image folder: accuracy, exits and latency.

    kerasnets early-exit --stages out/early_exit/fp32/early_exit.json \\
        --data ../shared/data/cifar10/test --thresholds 0.9

The stages come from ``kerasnets.export.stages.export_stages``; ``StagedRuntime`` runs them until
an exit is confident enough.
"""

import argparse
import json
import logging
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from kerasnets import data
from kerasnets.cli.common import add_verbose_argument, call_reporting_errors, configure_logging
from kerasnets.export.exit_policy import check_thresholds
from kerasnets.export.stages import MANIFEST_NAME, StagedRuntime

log = logging.getLogger("kerasnets.early_exit_tflite")


def build_parser(prog: str = "kerasnets early-exit") -> argparse.ArgumentParser:
    """Returns the ``argparse`` parser of the command line."""
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 on success, 2 on bad input (the message says what), 1 on other "
               "errors.")
    parser.add_argument("--stages", required=True, type=Path,
                        help=f"the {MANIFEST_NAME} of exported stages (or its folder)")
    parser.add_argument("--data", required=True, type=Path,
                        help="image folder (one sub-folder per class, the classes of training)")
    parser.add_argument("--thresholds", required=True, type=float, nargs="+",
                        help="one threshold for every early exit, or one per early exit, in [0, 1]")
    parser.add_argument("--per-class", type=int, help="only the first N images of each class")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads per interpreter (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_verbose_argument(parser)
    return parser


def _evaluate_command(args):
    """Returns ``(runtime, images, predictions, exits, seconds)`` of the command line's run."""
    runtime = StagedRuntime(args.stages, num_threads=args.threads)
    thresholds = args.thresholds[0] if len(args.thresholds) == 1 else args.thresholds
    check_thresholds(thresholds, runtime.num_exits)
    images = data.load_image_folder(args.data, runtime.input_shape[0], args.per_class,
                                    progress=not args.no_progress)
    if len(images.class_names) != runtime.manifest["classes"]:
        raise ValueError(
            f"--data has {len(images.class_names)} class folders but the model has "
            f"{runtime.manifest['classes']} classes"
        )
    x = data.preprocess(images.images, runtime.manifest["preprocessing"])
    predictions, exits, seconds = runtime.evaluate(x, thresholds,
                                                   progress=not args.no_progress)
    return runtime, images, predictions, exits, seconds


def main(argv: Optional[Sequence[str]] = None, prog: str = "kerasnets early-exit") -> int:
    """Returns the exit status of the command line (0 success, 2 bad input, 1 other errors)."""
    args = build_parser(prog).parse_args(argv)
    configure_logging(verbose=args.verbose)
    status, result = call_reporting_errors(log, _evaluate_command, args)
    if status:
        return status
    runtime, images, predictions, exits, seconds = result
    cumulative = np.cumsum(runtime.macs)
    print(json.dumps({
        "model": runtime.manifest["model"], "precision": runtime.manifest["precision"],
        "images": len(images), "accuracy": float(np.mean(predictions == images.labels)),
        "exit_counts": np.bincount(exits, minlength=runtime.num_exits).tolist(),
        "mean_ms": 1e3 * float(np.mean(seconds)), "mean_macs": float(np.mean(cumulative[exits])),
        "all_stages_macs": int(cumulative[-1]),
    }, indent=2))
    return 0
