"""Whole-epoch training throughput of ``kerasnets.training.fit`` against plain ``model.fit``.

Both train the same registered model at the same image size, global batch and optimizer step
(SGD with Nesterov momentum) on the same images, one after the other in this process:

- kerasnets: the data as ``kerasnets train --data ARCHIVE.zip --cache`` reads it
  (``loader.open_source`` on the zip, ``loader.Input(cache=True)``: JPEG decoding once into
  memory, then the CIFAR crop-and-flip augmentation and shuffling every epoch in ``tf.data``),
  trained by ``kerasnets.training.fit`` with the ``mobilenet_cifar`` recipe (L2 weight decay,
  warm-up and cosine schedule included);
- peer: ``model.fit(x, y)`` on the same images decoded beforehand into a NumPy array, no
  augmentation, no weight decay: the fastest plain Keras loop over data already in memory.

Each epoch is timed from its start to its end (input, steps, and for kerasnets its epoch-end
checkpoint-free bookkeeping; no evaluation in either). The first epoch of each also pays for
tracing, and kerasnets' first epoch for decoding the JPEGs; the table gives it apart and the
median of the later epochs, and the ratio of the two medians (target >= 0.8).

    python benchmarks/epoch_throughput.py --data ../shared/data/cifar10/train50k.zip \\
        --input-size 64 --batch-size 128 --epochs 3
"""

import argparse
import logging
import statistics
import sys
import time

LOG = logging.getLogger("epoch_throughput")


def _epoch_timer(keras):
    class EpochTimer(keras.callbacks.Callback):
        """Records the wall time of every epoch (s)."""

        def __init__(self):
            super().__init__()
            self.seconds = []
            self._start = None

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def run_kerasnets(args):
    """Returns ``(whole run seconds, [epoch seconds])`` of ``kerasnets.training.fit`` on the
    data (its JPEG decoding into the cache included in the whole run)."""
    from kerasnets import data
    from kerasnets._keras import keras
    from kerasnets.data import loader
    from kerasnets.models.registry import get_entry
    from kerasnets.training.fit import fit

    start = time.perf_counter()
    mode = data.preprocessing_mode(get_entry(args.model))
    source = loader.open_source(args.data)
    train = loader.Input(source, args.input_size, mode, args.batch_size, augment="cifar",
                         cache=True)
    timer = _epoch_timer(keras)
    fit(args.model, train, recipe="mobilenet_cifar", epochs=args.epochs, strategy="default",
        seed=0, verbose=0, callbacks=[timer])
    return time.perf_counter() - start, timer.seconds


def run_peer(args):
    """Returns ``(whole run seconds, [epoch seconds])`` of plain ``model.fit`` on arrays (the
    decoding beforehand included in the whole run)."""
    import numpy as np

    from kerasnets import data
    from kerasnets._keras import keras
    from kerasnets.models.registry import create_model, get_entry

    mode = data.preprocessing_mode(get_entry(args.model))
    start = time.perf_counter()
    images = data.load_image_folder(args.data, args.input_size, progress=False)
    x = data.preprocess(images.images, mode).astype(np.float32)
    y = keras.utils.to_categorical(images.labels, len(images.class_names))
    keras.utils.set_random_seed(0)
    model = create_model(args.model, input_shape=(args.input_size,) * 2 + (3,),
                         classes=len(images.class_names))
    model.compile(keras.optimizers.SGD(0.1 * args.batch_size / 128, momentum=0.9, nesterov=True),
                  "categorical_crossentropy", metrics=["accuracy"])
    timer = _epoch_timer(keras)
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, shuffle=True, verbose=0,
              callbacks=[timer])
    return time.perf_counter() - start, timer.seconds


def parse_args(argv=None):
    """Returns the parsed command line."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True,
                        help="image folder or ARCHIVE.zip[:FOLDER] (as kerasnets train --data)")
    parser.add_argument("--model", default="mobilenet_v3_small", help="registered model")
    parser.add_argument("--input-size", type=int, default=64, help="image side (default: 64)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch (default: 128)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each (default: 3)")
    args = parser.parse_args(argv)
    for name in ("input_size", "batch_size"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive; received "
                         f"{getattr(args, name)}")
    if args.epochs < 2:
        parser.error(f"--epochs must be >= 2 (the first epoch includes tracing); received "
                     f"{args.epochs}")
    return args


def main(argv=None):
    """Runs the benchmark and prints its table; returns the exit status."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from kerasnets import data
    from kerasnets.bench.local import host_cpu_line

    LOG.info("peer: model.fit on pre-decoded arrays")
    peer_total, peer = run_peer(args)
    LOG.info("kerasnets: fit on %s with --cache", args.data)
    ours_total, ours = run_kerasnets(args)
    count = len(data.list_images(args.data).labels)
    # kerasnets trains count // batch full batches per epoch; Keras' fit also runs the last,
    # partial one.
    rows = [("kerasnets fit, zip, --cache", ours_total, ours,
             count // args.batch_size * args.batch_size),
            ("model.fit on decoded arrays", peer_total, peer, count)]
    print(f"\n{args.model} {args.input_size}x{args.input_size}, batch {args.batch_size}, "
          f"{count} images, {args.epochs} epochs each\n{host_cpu_line()}\n")
    print("| loop | whole run incl. decoding (s) | first epoch (s) | later epochs, median (s) | "
          "images/s (later epochs) |")
    print("|---|---|---|---|---|")
    rates = []
    for name, total, epochs, images in rows:
        median = statistics.median(epochs[1:])
        rates.append(images / median)
        print(f"| {name} | {total:.0f} | {epochs[0]:.1f} | {median:.1f} | "
              f"{images / median:.0f} |")
    print(f"\nkerasnets / model.fit, images/s of later epochs: {rates[0] / rates[1]:.2f}x "
          "(target >= 0.8)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
