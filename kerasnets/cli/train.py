"""``kerasnets train``: train a registered model with a paper recipe (``kerasnets.training.fit``),
with checkpoints, resume and ``tf.distribute`` strategies.

    kerasnets train --model mobilenet_v3_small --input-size 32 --epochs 3 \\
        --checkpoint-dir runs/v3s                        # the embedded CIFAR-10 subset
    kerasnets train --model densenet_40_k12 --data ../shared/data/cifar10/train \\
        --eval-data ../shared/data/cifar10/test --checkpoint-dir runs/d40 --save-freq 500
    kerasnets train ... --checkpoint-dir runs/d40 --resume   # after an interruption
    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}' \\
        kerasnets train ... --strategy multiworker              # on every machine
"""

import argparse
import json
import logging
from typing import Dict, List, Optional

import tensorflow as tf

from kerasnets import data
from kerasnets.cli.common import (
    EXIT_BAD_INPUT, EXIT_ERROR, EXIT_OK, add_verbose_argument, configure_logging,
)
from kerasnets.data import loader
from kerasnets.models.registry import get_entry
from kerasnets.training import recipes
from kerasnets.training.checkpoints import check_writable
from kerasnets.training.distribute import STRATEGIES, build_strategy
from kerasnets.training.fit import AlreadyComplete, FitResult, check_model_kwargs, fit

log = logging.getLogger("kerasnets.training.fit")


def _key_values(pairs: Optional[List[str]], flag: str) -> Dict[str, object]:
    """Returns ``{key: value}`` of ``KEY=VALUE`` strings, values parsed as JSON when they are."""
    parsed = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} takes KEY=VALUE; received {pair!r}")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


def _save_freq(text):
    if text == "epoch":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be 'epoch' or a positive number of steps; "
                                         f"received {text!r}")
    return value


def build_parser(prog: str = "kerasnets train") -> argparse.ArgumentParser:
    """Returns the ``argparse`` parser of ``kerasnets train``."""
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Data: an image folder (<root>/<class>/<image>; a directory, or "
               "ARCHIVE.zip[:FOLDER]), TFRecord files (path or glob; features image/encoded and "
               "image/class/label) or tfds:NAME[:SPLIT] with --data-dir. Without --data, the "
               "embedded CIFAR-10 subset (train, test). Files that do not decode as images are "
               "skipped with a warning naming each.\n"
               "Exit status: 0 on success (or when --resume finds the run finished), 2 on bad "
               "input (the message says what), 1 on other errors.")
    add = parser.add_argument
    add("--model", required=True, help="registered model name (kerasnets.list_models())")
    add("--model-arg", action="append", metavar="KEY=VALUE",
        help="builder argument, repeatable (JSON values), e.g. alpha=0.35 dropout_rate=0")
    add("--weights", help="initial weights (.h5) for the model (e.g. for --qat)")
    add("--input-size", type=int, help="image side (default: the model's default size)")
    add("--data", help="training data: an image folder, ARCHIVE.zip[:FOLDER] (FOLDER: the "
        "image folder inside the zip; default its single top-level folder), TFRecord files or "
        "tfds:NAME (default: the embedded CIFAR-10 subset)")
    add("--eval-data", help="evaluation data (default: the embedded test split without --data)")
    add("--data-dir", help="folder of prepared TensorFlow Datasets (tfds: data)")
    add("--classes", type=int,
        help="number of classes of TFRecord data (default: largest label + 1)")
    add("--label-offset", type=int, default=0,
        help="subtracted from TFRecord labels (1 for 1-based ImageNet TFRecords)")
    add("--epochs", type=int, help="total epochs (default: the recipe's)")
    add("--steps-per-epoch", type=int, help="steps per epoch (default: examples // batch size)")
    add("--batch-size", type=int, default=64, help="global batch size (default: %(default)s)")
    add("--lr", type=float, help="peak learning rate (default: the recipe's, scaled to the batch)")
    add("--recipe", help="training recipe (default: the model family's); "
                         "see kerasnets.training.recipes.list_recipes()")
    add("--set", action="append", metavar="FIELD=VALUE", dest="overrides",
        help="override a recipe field, repeatable, e.g. label_smoothing=0.1 ema=null")
    add("--augment", choices=("imagenet", "cifar", "none"),
        help="augmentation (default: the recipe's)")
    add("--cache", action="store_true", help="decode the training data once into memory")
    add("--strategy", default="auto", choices=STRATEGIES, help="tf.distribute strategy "
        "(default: %(default)s)")
    add("--tpu", help="TPU name or address for --strategy tpu (default: $TPU_NAME or local)")
    add("--bn-momentum", type=float, metavar="M",
        help="momentum of every BatchNormalization's moving statistics, in (0, 1) (default: the "
             "model's; 0.9 for short CIFAR runs at rate 0.1, see kerasnets.training.fit.fit)")
    add("--mixed-precision", action="store_true",
        help="mixed float16 (GPU) / bfloat16 (TPU, CPU) computation")
    add("--qat", action="store_true",
        help="quantization-aware training (kerasnets.quantization.qat)")
    add("--checkpoint-dir", required=True, help="where checkpoints, logs and final weights go")
    add("--resume", action="store_true", help="continue the run in --checkpoint-dir")
    add("--save-freq", type=_save_freq, default="epoch",
        help="checkpoint every N steps, or 'epoch' (default: %(default)s)")
    add("--seed", type=int, default=0, help="seed of initialization, data order and "
        "augmentation (default: %(default)s)")
    add("--deterministic", action="store_true",
        help="deterministic TensorFlow ops (tf.config.experimental.enable_op_determinism)")
    add("--tensorboard", action="store_true", help="also write TensorBoard logs")
    add("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    add_verbose_argument(parser)
    return parser


def _open_data(args):
    """Returns ``(train source, eval source or None)`` of the command line's data flags."""
    if args.eval_data and not args.data:
        raise ValueError("--eval-data needs --data (the embedded data set has its own test split)")
    open_kwargs = dict(data_dir=args.data_dir, classes=args.classes, label_offset=args.label_offset)
    train_source = loader.open_source(args.data or data.embedded_dataset("train"), **open_kwargs)
    eval_spec = args.eval_data or (None if args.data else data.embedded_dataset("test"))
    if eval_spec is None:
        return train_source, None
    open_kwargs["classes"] = train_source.num_classes
    eval_source = loader.open_source(eval_spec, **open_kwargs)
    if train_source.class_names and eval_source.class_names:
        data.check_same_classes(train_source.class_names, eval_source.class_names)
    elif eval_source.num_classes != train_source.num_classes:
        raise ValueError(f"--eval-data has {eval_source.num_classes} classes, --data "
                         f"{train_source.num_classes}")
    return train_source, eval_source


def run(args: argparse.Namespace) -> FitResult:
    """Returns the ``FitResult`` of the command line ``args`` (see ``build_parser``)."""
    # Everything that needs no TensorFlow op is checked before the strategy is built, which a
    # multi-worker strategy needs to be first.
    entry = get_entry(args.model)
    recipe = recipes.get_recipe(args.recipe or recipes.default_recipe(entry.family))
    overrides = _key_values(args.overrides, "--set")
    if overrides:
        recipe = recipe.override(**overrides)
    model_kwargs = _key_values(args.model_arg, "--model-arg")
    if args.weights:
        model_kwargs["weights"] = args.weights
    check_model_kwargs(args.model, model_kwargs)
    image_size = args.input_size or entry.default_size
    if image_size < entry.min_size:
        raise ValueError(f"--input-size must be at least {entry.min_size} for {args.model}; "
                         f"received {image_size}")
    mode = data.preprocessing_mode(entry, model_kwargs)
    augment = {None: recipe.augment, "none": None}.get(args.augment, args.augment)

    # The outputs' folder before any work (fit checks it again, for callers of the library).
    check_writable(args.checkpoint_dir)
    strategy = build_strategy(args.strategy, args.tpu)
    log.info("strategy %s: %d replica(s) in sync", type(strategy).__name__,
             strategy.num_replicas_in_sync)
    if args.deterministic:
        tf.config.experimental.enable_op_determinism()
    train_source, eval_source = _open_data(args)
    train = loader.Input(train_source, image_size, mode, args.batch_size, augment=augment,
                         seed=args.seed, cache=args.cache, steps_per_epoch=args.steps_per_epoch)
    log.info("training data %s: %d examples, %d classes; %s inputs, %s augmentation",
             train_source.description, train_source.num_examples, train_source.num_classes,
             mode, augment)
    return fit(args.model, train, eval_source, recipe=recipe, epochs=args.epochs,
               strategy=strategy, checkpoint_dir=args.checkpoint_dir, resume=args.resume,
               qat=args.qat, learning_rate=args.lr, model_kwargs=model_kwargs,
               mixed_precision=args.mixed_precision, bn_momentum=args.bn_momentum,
               save_freq=args.save_freq, seed=args.seed,
               tensorboard=args.tensorboard,
               settings={"eval_data": eval_source.description if eval_source else None})


def main(argv: Optional[List[str]] = None, prog: str = "kerasnets train") -> int:
    """Runs the command line; returns the exit status (0 ok, 2 bad input, 1 other errors)."""
    args = build_parser(prog).parse_args(argv)
    configure_logging(args.log_level, verbose=args.verbose)
    try:
        result = run(args)
    except AlreadyComplete as done:
        log.info("%s", done)
        return EXIT_OK
    except ValueError as err:
        log.error("%s", err)
        return EXIT_BAD_INPUT
    except Exception:  # The traceback is the message for anything unexpected.
        log.exception("training failed")
        return EXIT_ERROR
    log.info("done: %d steps, %s images/s%s", result.steps,
             f"{result.images_per_second:.1f}" if result.images_per_second else "n/a",
             f", final weights {result.weights_path}" if result.weights_path else "")
    return EXIT_OK
