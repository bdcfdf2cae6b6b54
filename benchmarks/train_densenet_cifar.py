"""Trains a CIFAR DenseNet (kerasnets registry) on the real CIFAR-10 images and reports its test
accuracy, parameters and wall time.

The recipe is the paper's (Huang et al., 2017, section 4.2) scaled to a short run: SGD with
Nesterov momentum 0.9, weight decay 1e-4, learning rate 0.1 divided by 10 at 50% and 75% of
training, batch size 64, and the standard augmentation (zero-pad 4 pixels, random 32x32 crop,
random horizontal flip) with per-channel mean/std normalization.

    python -m benchmarks.train_densenet_cifar --model densenet_bc_100_k12 --epochs 3 \\
        --limit-train 1000 --data ../shared/data/cifar10
"""

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

import kerasnets
from kerasnets._keras import keras
from kerasnets.models.densenet import CIFAR, CIFAR10_MEAN, CIFAR10_STD

LOG = logging.getLogger("train_densenet_cifar")
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
IMAGE_SIZE = 32
PAD = 4
BASE_LR = 0.1
LR_DROPS = (0.5, 0.75)  # fractions of training after which the learning rate is divided by 10
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4


def list_split(split_dir, limit=None, seed=0):
    """Returns ``(paths, labels, class_names)`` of the JPEGs in ``split_dir/<class>/``.

    With ``limit``, a random subset of ``limit`` images (fixed ``seed``) is kept.
    """
    split_dir = Path(split_dir)
    class_names = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if not class_names:
        raise ValueError(f"no class folders in {split_dir}; expected {split_dir}/<class>/*.jpg")
    paths, labels = [], []
    for label, name in enumerate(class_names):
        for path in sorted((split_dir / name).glob("*.jpg")):
            paths.append(str(path))
            labels.append(label)
    if limit is not None and limit < len(paths):
        keep = np.sort(np.random.default_rng(seed).permutation(len(paths))[:limit])
        paths = [paths[i] for i in keep]
        labels = [labels[i] for i in keep]
    return paths, np.asarray(labels, dtype="int64"), class_names


def decode_images(paths):
    """Returns the JPEGs of ``paths`` decoded once into a ``uint8`` array ``(n, 32, 32, 3)``."""
    return np.stack([tf.io.decode_jpeg(tf.io.read_file(p), channels=3).numpy() for p in paths])


def augment(image):
    """Returns ``image`` zero-padded by 4 pixels, randomly cropped back to 32x32 and randomly
    flipped left-right (the standard CIFAR augmentation of the paper)."""
    image = tf.pad(image, [[PAD, PAD], [PAD, PAD], [0, 0]])
    image = tf.image.random_crop(image, [IMAGE_SIZE, IMAGE_SIZE, 3])
    return tf.image.random_flip_left_right(image)


def normalize(image):
    """Returns ``image`` ([0, 255]) as float32 normalized by the CIFAR-10 per-channel mean/std."""
    image = tf.cast(image, tf.float32) / 255.0
    return (image - tf.constant(CIFAR10_MEAN)) / tf.constant(CIFAR10_STD)


def make_dataset(images, labels, batch_size, training, seed=0):
    """Returns a batched ``tf.data.Dataset`` of ``(normalized image, label)``; shuffled and
    augmented when ``training``."""
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(lambda x, y: (augment(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda x, y: (normalize(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def learning_rate_schedule(total_steps):
    """Returns the learning rate schedule over ``total_steps`` training steps: 0.1, divided by
    10 after 50% and after 75% of the steps (the paper's drops at epochs 150 and 225 of 300,
    scaled; counted in steps so that a run of one or two epochs still has both drops)."""
    # PiecewiseConstantDecay keeps values[i] while step <= boundaries[i] (steps count from 0).
    boundaries = [int(round(f * total_steps)) - 1 for f in LR_DROPS]
    values = [BASE_LR * 0.1 ** i for i in range(len(LR_DROPS) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def train(model_name, epochs, batch_size, data_dir, limit_train=None, seed=0, verbose=1):
    """Returns a result dict (model, params, epochs, train/test images, test accuracy, wall
    time) after training the registered CIFAR DenseNet ``model_name`` on ``data_dir/train`` and
    evaluating it on ``data_dir/test``."""
    start = time.perf_counter()
    data_dir = Path(data_dir)
    train_paths, train_labels, class_names = list_split(data_dir / "train", limit_train, seed)
    test_paths, test_labels, test_classes = list_split(data_dir / "test")
    if test_classes != class_names:
        raise ValueError(f"train classes {class_names} differ from test classes {test_classes}")
    LOG.info("decoding %d train and %d test images", len(train_paths), len(test_paths))
    train_ds = make_dataset(decode_images(train_paths), train_labels, batch_size, True, seed)
    test_ds = make_dataset(decode_images(test_paths), test_labels, batch_size, False)

    keras.utils.set_random_seed(seed)
    model = kerasnets.create_model(model_name, classes=len(class_names))
    steps_per_epoch = -(-len(train_paths) // batch_size)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate_schedule(epochs * steps_per_epoch),
                                       momentum=MOMENTUM, nesterov=True,
                                       weight_decay=WEIGHT_DECAY),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    model.fit(train_ds, epochs=epochs, verbose=verbose)
    _, accuracy = model.evaluate(test_ds, verbose=0)
    return {
        "model": model_name,
        "params": model.count_params(),
        "epochs": epochs,
        "train_images": len(train_paths),
        "test_images": len(test_paths),
        "test_accuracy": float(accuracy),
        "wall_s": time.perf_counter() - start,
    }


def format_table(results):
    """Returns the results as a Markdown table, one row per result dict."""
    header = "| model | params | epochs | train images | test images | test accuracy | wall time |"
    rule = "|---|---|---|---|---|---|---|"
    rows = [
        f"| {r['model']} | {r['params']:,} | {r['epochs']} | {r['train_images']:,} | "
        f"{r['test_images']:,} | {100 * r['test_accuracy']:.2f} % | {r['wall_s'] / 60:.1f} min |"
        for r in results
    ]
    return "\n".join([header, rule] + rows)


def parse_args(argv=None):
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


def main(argv=None):
    """Runs the command line; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    result = train(args.model, args.epochs, args.batch_size, args.data, args.limit_train,
                   args.seed)
    print(format_table([result]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
