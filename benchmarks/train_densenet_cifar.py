"""Trains a CIFAR DenseNet (kerasnets registry) on the real CIFAR-10 images and reports its test
accuracy, parameters and wall time.

Training goes through ``kerasnets.training.fit.fit`` with the paper's recipe
``kerasnets.training.recipes`` ``"densenet_cifar"`` (Huang et al., 2017, section 4.2) scaled to a
short run: SGD with Nesterov momentum 0.9, L2 weight decay 1e-4 on every parameter, learning
rate 0.1 at batch 64 (scaled linearly with the batch) divided by 10 at 50% and 75% of training,
and the C10+ augmentation of ``kerasnets.data.augment`` (zero-pad 4 pixels, random 32x32 crop,
random horizontal flip) with the model's own input normalization.

    python -m benchmarks.train_densenet_cifar --model densenet_bc_100_k12 --epochs 3 \\
        --limit-train 1000 --data ../shared/data/cifar10
"""

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

from kerasnets import data
from kerasnets.data import loader
from kerasnets.models.densenet import CIFAR
from kerasnets.models.registry import get_entry
from kerasnets.training import recipes
from kerasnets.training.fit import fit

LOG = logging.getLogger("train_densenet_cifar")
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
IMAGE_SIZE = 32
RECIPE = "densenet_cifar"


def train(model_name: str, epochs: int, batch_size: int, data_dir: Path,
          limit_train: Optional[int] = None, seed: int = 0, verbose: int = 2) -> Dict:
    """Returns a result dict (model, params, epochs, train/test images, test accuracy, wall
    time) after training the registered CIFAR DenseNet ``model_name`` on ``data_dir/train``
    (a random ``limit_train`` of its images, when given) with the ``densenet_cifar`` recipe and
    evaluating it on ``data_dir/test``."""
    start = time.perf_counter()
    data_dir = Path(data_dir)
    train_source = loader.open_source(data_dir / "train")
    if limit_train is not None:
        train_source = loader.sample(train_source, limit_train, seed)
    test_source = loader.open_source(data_dir / "test")
    data.check_same_classes(train_source.class_names, test_source.class_names,
                            ("train", "test"))
    recipe = recipes.get_recipe(RECIPE)
    mode = data.preprocessing_mode(get_entry(model_name))
    train_input = loader.Input(train_source, IMAGE_SIZE, mode, batch_size,
                               augment=recipe.augment, seed=seed, cache=True)
    LOG.info("training on %d images, evaluating on %d", train_source.num_examples,
             test_source.num_examples)
    result = fit(model_name, train_input, test_source, recipe=recipe, epochs=epochs,
                 strategy="default", seed=seed, verbose=verbose)
    return {
        "model": model_name,
        "params": result.model.count_params(),
        "epochs": epochs,
        "train_images": train_source.num_examples,
        "test_images": test_source.num_examples,
        "test_accuracy": result.history["val_accuracy"][-1],
        "wall_s": time.perf_counter() - start,
    }


def format_table(results: List[Dict]) -> str:
    """Returns the results as a Markdown table, one row per result dict."""
    header = "| model | params | epochs | train images | test images | test accuracy | wall time |"
    rule = "|---|---|---|---|---|---|---|"
    rows = [
        f"| {r['model']} | {r['params']:,} | {r['epochs']} | {r['train_images']:,} | "
        f"{r['test_images']:,} | {100 * r['test_accuracy']:.2f} % | {r['wall_s'] / 60:.1f} min |"
        for r in results
    ]
    return "\n".join([header, rule] + rows)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Returns the parsed command line."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="densenet_bc_100_k12", choices=sorted(CIFAR),
                        help="registered CIFAR DenseNet (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="batch size (the paper's 64; default: %(default)s)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with train/<class>/*.jpg and test/<class>/*.jpg "
                             "(default: ../shared/data/cifar10)")
    parser.add_argument("--limit-train", type=int, default=None, metavar="N",
                        help="train on a random subset of N images (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "limit_train"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1; received {value}")
    if not (args.data / "train").is_dir() or not (args.data / "test").is_dir():
        parser.error(f"--data {args.data} must contain train/ and test/ class folders")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command line; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    result = train(args.model, args.epochs, args.batch_size, args.data, args.limit_train,
                   args.seed)
    print(format_table([result]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
