"""``tf.data`` input pipelines for training at scale: image folders, TFRecord files, TFDS datasets.

``open_source`` says where the examples of a data set are and what their classes are;
``Input`` turns a source into the ``tf.data`` pipeline of one training run (parallel decode,
optional in-memory cache, the papers' augmentation, the model's preprocessing, prefetch), and
``make_dataset`` is the one-call form.

Sources:

- an image folder, ``<root>/<class>/<image>`` (a directory, or ``kerasnets.data.ZipFolder``
  such as ``data.embedded_dataset("train")`` or ``"train50k.zip:train"``), listed by
  ``kerasnets.data``;
- TFRecord files (a path or glob) of ``tf.train.Example`` records in the common ImageNet
  convention: ``image/encoded`` (bytes of a JPEG/PNG/BMP/GIF image) and ``image/class/label``
  (int64). Files written by the Inception/TF-Slim ``build_imagenet_data.py`` number the classes
  from 1 (0 is "background"): read them with ``label_offset=1``;
- ``tfds:NAME[:SPLIT]``: a TensorFlow Datasets data set already prepared in ``data_dir``
  (needs ``pip install tensorflow-datasets``; never downloads);
- decoded arrays (``from_image_set``), e.g. a ``kerasnets.data.ImageSet``.

Training order is a pure function of ``(seed, epoch, position)``: each epoch's order is a
stateless shuffle seeded by the epoch, and each example's augmentation draws stateless random
numbers seeded by its place in the run. A run can therefore start at any ``(epoch, step)`` and
produce exactly the batches an uninterrupted run would (what ``kerasnets.training.fit`` relies on to
resume mid-epoch), and with ``input_context`` each worker of a ``tf.distribute`` job reads its own
disjoint share of every global batch.
"""

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any, Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from kerasnets.data import folders as kdata
from kerasnets.data import screen
from kerasnets.data.augment import AUGMENTATIONS, augment_image, eval_view, resize_uint8
from kerasnets.models.convention import check_positive_int

log = logging.getLogger(__name__)

TFRECORD_IMAGE_KEY = "image/encoded"
TFRECORD_LABEL_KEY = "image/class/label"
TFDS_PREFIX = "tfds:"
DEFAULT_SHUFFLE_BUFFER = 10_000
_CYCLE_LENGTH = 8
# Record keys: file index * _RECORDS_PER_FILE + record index in the file.
_RECORDS_PER_FILE = 2 ** 40


@dataclasses.dataclass(eq=False)
class DataSource:
    """Where the examples of a data set are, and their classes.

    ``kind`` is ``"folder"`` (``paths`` on disk or ``encoded`` bytes from a zip), ``"arrays"``
    (decoded ``images``), ``"tfrecord"`` (``files``) or ``"tfds"``; ``labels`` are the class
    indices of folder and array examples; ``skip_keys`` the sorted keys (file index * 2**40 +
    record index) of the TFRecord records whose image does not decode.
    """

    kind: str
    description: str
    num_classes: int
    num_examples: int
    class_names: Optional[Tuple[str, ...]] = None
    paths: Optional[Tuple[str, ...]] = None
    encoded: Optional[Tuple[bytes, ...]] = None
    images: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None
    files: Optional[Tuple[str, ...]] = None
    label_offset: int = 0
    tfds_builder: object = None
    tfds_split: Optional[str] = None
    skip_keys: Optional[np.ndarray] = None


def _folder_source(source):
    """Returns the ``DataSource`` of the decodable images of an image folder (directory or
    ``ZipFolder``), listed by ``kerasnets.data.list_images``."""
    listing = kdata.list_images(source)
    records = {"paths" if listing.from_files else "encoded": listing.records}
    return DataSource("folder", listing.description, len(listing.class_names),
                      len(listing.labels), listing.class_names, labels=listing.labels, **records)


def _record_key(file_index, record_index):
    """Returns the int64 key of record ``record_index`` of TFRecord file ``file_index``."""
    return tf.cast(file_index, tf.int64) * _RECORDS_PER_FILE + record_index


def _keyed_records(files, indices, cycle_length=_CYCLE_LENGTH):
    """Returns the ``tf.data.Dataset`` of ``(key, serialized record)`` of the TFRecord
    ``files`` (a tuple of paths) whose indices are the int ``indices`` tensor, interleaved in a
    fixed order."""
    paths = tf.constant(files)

    def read(index):
        return tf.data.TFRecordDataset(paths[index]).enumerate().map(
            lambda position, record: (_record_key(index, position), record))

    return tf.data.Dataset.from_tensor_slices(indices).interleave(
        read, cycle_length=cycle_length, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _parse_example(record, label_offset):
    """Returns ``(encoded image, label - label_offset)`` of a serialized ``tf.train.Example``."""
    spec = {TFRECORD_IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
            TFRECORD_LABEL_KEY: tf.io.FixedLenFeature([], tf.int64)}
    example = tf.io.parse_single_example(record, spec)
    return example[TFRECORD_IMAGE_KEY], example[TFRECORD_LABEL_KEY] - label_offset


def _scan_tfrecords(files, label_offset):
    """Returns ``(keys, labels)`` of every record of TFRecord files, and the sorted keys of
    those whose image does not decode (logged by ``kerasnets.data.screen``)."""
    keyed = _keyed_records(files, tf.range(len(files))).map(
        lambda key, record: (key, _parse_example(record, label_offset)),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # Two passes over the records: every label (a cheap parse), then every image decoded.
    chunks = list(keyed.map(lambda key, example: (key, example[1])).batch(65536)
                  .as_numpy_iterator())
    keys = np.concatenate([k for k, _ in chunks]) if chunks else np.zeros([0], "int64")
    labels = np.concatenate([y for _, y in chunks]) if chunks else np.zeros([0], "int64")
    kept, _ = screen.decodable(keyed.map(lambda key, example: (key, example[0])), tf.identity)
    bad = np.setdiff1d(keys, kept)

    def read(key):
        records = tf.data.TFRecordDataset(files[key // _RECORDS_PER_FILE])
        record = next(iter(records.skip(key % _RECORDS_PER_FILE).take(1)))
        return _parse_example(record, label_offset)[0]

    screen.report_skipped(
        [(f"{files[k // _RECORDS_PER_FILE]} record {k % _RECORDS_PER_FILE}",
          screen.failure(lambda k=k: read(k))) for k in bad.tolist()], len(keys),
        f"{len(files)} TFRecord file(s)", unit="records")
    return keys, labels, bad


def _tfrecord_source(pattern, classes, label_offset):
    """Returns the ``DataSource`` of the TFRecord files matching the glob ``pattern``."""
    files = tuple(sorted(tf.io.gfile.glob(str(pattern))))
    if not files:
        raise ValueError(
            f"data {str(pattern)!r} is not an image folder, and as a TFRecord path or glob it "
            "matches no file"
        )
    log.info("reading the records of %d TFRecord file(s) matching %s", len(files), pattern)
    try:
        keys, labels, bad = _scan_tfrecords(files, label_offset)
    except tf.errors.OpError as err:
        raise ValueError(
            f"data {str(pattern)!r}: cannot read the TFRecord files as tf.train.Example records "
            f"with a string {TFRECORD_IMAGE_KEY!r} and an int64 {TFRECORD_LABEL_KEY!r} feature: "
            f"{err.message.splitlines()[0]}"
        ) from err
    if len(keys) == 0:
        raise ValueError(f"data {str(pattern)!r}: the TFRecord files hold no record")
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise ValueError(
            f"data {str(pattern)!r}: label {low + label_offset} minus label_offset="
            f"{label_offset} is negative; files numbering classes from 1 need label_offset=1"
        )
    if classes is None:
        classes = high + 1
    elif high >= classes:
        raise ValueError(
            f"data {str(pattern)!r} has label {high + label_offset} (class index {high} after "
            f"label_offset={label_offset}), outside the {classes} classes given"
        )
    good = labels[~np.isin(keys, bad)]
    present, counts = np.unique(good, return_counts=True)
    screen.check_classes({f"label {y + label_offset}": int(n) for y, n in zip(present, counts)},
                         f"data {str(pattern)!r}")
    return DataSource("tfrecord", f"{pattern} ({len(files)} files)", classes, len(good),
                      files=files, label_offset=label_offset, skip_keys=bad)


def _tfds_source(spec, data_dir):
    """Returns the ``DataSource`` of ``tfds:NAME[:SPLIT]`` prepared in ``data_dir``."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise ValueError(
            f"data {spec!r} is a TensorFlow Datasets name, but tensorflow_datasets is not "
            "installed: pip install tensorflow-datasets"
        ) from err
    name, _, split = spec[len(TFDS_PREFIX):].partition(":")
    split = split or "train"
    if data_dir is None:
        raise ValueError(f"data {spec!r} needs data_dir (--data-dir), the folder the data set "
                         "was prepared in (kerasnets never downloads)")
    try:
        builder = tfds.builder(name, data_dir=str(data_dir))
        num_examples = builder.info.splits[split].num_examples
        label = builder.info.features["label"]
    except Exception as err:  # tfds raises many types for a missing or unprepared data set.
        raise ValueError(f"data {spec!r}: no prepared TFDS data set in {data_dir}: {err}") from err
    names = tuple(label.names) if getattr(label, "names", None) else None
    return DataSource("tfds", f"{spec} in {data_dir}", label.num_classes, num_examples, names,
                      tfds_builder=builder, tfds_split=split)


def open_source(source: Union[str, Path, kdata.ZipFolder, DataSource], *,
                data_dir: Optional[Union[str, Path]] = None, classes: Optional[int] = None,
                label_offset: int = 0) -> DataSource:
    """Returns the ``DataSource`` of ``source``, after checking it holds examples.

    Args:
      source: an image-folder path, ``kerasnets.data.ZipFolder`` or ``ARCHIVE.zip[:FOLDER]``
        (``kerasnets.data.zip_folder``); a TFRecord file or glob;
        ``"tfds:NAME[:SPLIT]"``; or a ``DataSource`` (returned as is).
      data_dir: the folder of prepared TFDS data sets (``tfds:`` sources only).
      classes: number of classes of TFRecord data; by default the largest label + 1.
      label_offset: subtracted from TFRecord labels (1 for 1-based ImageNet TFRecords).

    Raises:
      ValueError: a missing or empty folder, a glob that matches nothing, unreadable records,
        labels out of range, or TFDS unavailable.
    """
    if isinstance(source, DataSource):
        return source
    source = kdata.zip_folder(source) or source
    if classes is not None:
        check_positive_int("classes", classes)
    if not isinstance(label_offset, int) or label_offset < 0:
        raise ValueError(f"`label_offset` must be an integer >= 0; received {label_offset!r}")
    if isinstance(source, kdata.ZipFolder) or Path(source).is_dir():
        return _folder_source(source)
    if str(source).startswith(TFDS_PREFIX):
        return _tfds_source(str(source), data_dir)
    return _tfrecord_source(source, classes, label_offset)


def sample(source: DataSource, count: int, seed: int = 0) -> DataSource:
    """Returns a ``DataSource`` of ``count`` examples of an image-folder or arrays ``source``,
    drawn at random with ``seed`` and kept in their order (``source`` itself when it has no more
    than ``count``).

    Raises ``ValueError`` for a TFRecord or TFDS source (streams are not indexable) or a
    ``count`` that is not a positive integer.
    """
    check_positive_int("count", count)
    if source.kind not in ("folder", "arrays"):
        raise ValueError(f"`source` must be an image folder or arrays to sample from; received "
                         f"a {source.kind} source ({source.description})")
    if count >= source.num_examples:
        return source
    keep = np.sort(np.random.default_rng(seed).permutation(source.num_examples)[:count])

    def pick(values):
        if values is None:
            return None
        return tuple(values[i] for i in keep) if isinstance(values, tuple) else values[keep]

    return dataclasses.replace(
        source, description=f"{source.description} ({count} of {source.num_examples})",
        num_examples=count, paths=pick(source.paths), encoded=pick(source.encoded),
        images=pick(source.images), labels=pick(source.labels))


def from_image_set(image_set: kdata.ImageSet) -> DataSource:
    """Returns an ``"arrays"`` ``DataSource`` of a ``kerasnets.data.ImageSet`` (decoded images)."""
    images = np.asarray(image_set.images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"`image_set.images` must be uint8 (n, rows, cols, 3); received "
                         f"{images.dtype} {images.shape}")
    return DataSource("arrays", image_set.source, len(image_set.class_names), len(images),
                      tuple(image_set.class_names), images=images,
                      labels=np.asarray(image_set.labels, dtype="int64"))


def _decode(encoded):
    """Returns the ``uint8`` ``(rows, cols, 3)`` image of encoded bytes (``data.decode_image``)."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _fold(seed, value):
    """Returns the stateless seed ``seed`` folded with the int64 ``value``."""
    return tf.random.experimental.stateless_fold_in(seed, tf.cast(value, tf.int64))


@dataclasses.dataclass(eq=False)
class Input:
    """The input pipeline of a training run: a source read at one image size and preprocessing.

    Args:
      source: a ``DataSource`` (see ``open_source``).
      image_size: side of the square images the model takes.
      mode: ``kerasnets.data.preprocess`` mode (``data.preprocessing_mode(entry, kwargs)``).
      batch_size: the global batch size (all replicas together).
      augment: ``"imagenet"`` (random-resized crop + flip), ``"cifar"`` (pad by 1/8 of the
        side, random crop, flip) or ``None`` (``kerasnets.data.augment``); evaluation uses the
        matching view (central crop for ``"imagenet"``, the resized image otherwise).
      seed: seeds the order of every epoch and every random augmentation.
      deterministic: keep the order of examples fixed under parallel decoding (else faster).
      cache: decode the source once into memory (``image_size`` images) instead of every epoch;
        for data sets that fit in memory.
      steps_per_epoch: steps of one training epoch; by default ``num_examples // batch_size``.
      shuffle_buffer: shuffle buffer of TFRecord/TFDS sources (folders shuffle fully).
    """

    source: DataSource
    image_size: int
    mode: str
    batch_size: int
    augment: Optional[str] = None
    seed: int = 0
    deterministic: bool = True
    cache: bool = False
    steps_per_epoch: Optional[int] = None
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER

    def __post_init__(self):
        if not isinstance(self.source, DataSource):
            raise ValueError("`source` must be a kerasnets.data.loader.DataSource "
                             "(open_source(...));"
                             f" received {type(self.source).__name__}")
        check_positive_int("image_size", self.image_size)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("shuffle_buffer", self.shuffle_buffer)
        if self.mode not in kdata.PREPROCESSING_MODES:
            raise ValueError(f"`mode` must be one of {kdata.PREPROCESSING_MODES}; received "
                             f"mode={self.mode!r}")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"`augment` must be one of {AUGMENTATIONS}; received "
                             f"augment={self.augment!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"`seed` must be an integer >= 0; received seed={self.seed!r}")
        if self.steps_per_epoch is None:
            self.steps_per_epoch = self.source.num_examples // self.batch_size
            if self.steps_per_epoch == 0:
                raise ValueError(
                    f"`batch_size`={self.batch_size} is larger than the "
                    f"{self.source.num_examples} examples of {self.source.description}: not one "
                    "full training step per epoch"
                )
        check_positive_int("steps_per_epoch", self.steps_per_epoch)
        self._cached = None

    @property
    def num_classes(self) -> int:
        """Returns the number of classes of the source (the length of the one-hot labels)."""
        return self.source.num_classes

    # -- reading ---------------------------------------------------------------------------

    def _folder_table(self):
        """Returns ``(records, labels, load)`` of a folder read from its files or bytes."""
        source = self.source
        records = source.paths if source.paths is not None else source.encoded
        read = tf.io.read_file if source.paths is not None else tf.identity
        return tf.constant(records), tf.constant(source.labels), lambda r: _decode(read(r))

    def _table(self):
        """Returns ``(records, labels, load)`` of an indexable source, or None for a stream.

        ``records`` are file paths, encoded bytes or row indices of decoded images, and
        ``load(record)`` returns the decoded ``uint8`` image of a record.
        """
        if self.source.kind == "arrays":
            images, labels = self.source.images, self.source.labels
        elif self.cache:
            images, labels = self._cache_images()
        elif self.source.kind == "folder":
            return self._folder_table()
        else:
            return None
        images = tf.constant(images)
        return (tf.range(len(labels), dtype=tf.int64), tf.constant(labels),
                lambda i: tf.gather(images, i))

    def _records(self, file_indices=None):
        """Returns a ``tf.data.Dataset`` of ``(encoded image, label)`` of a TFRecord or TFDS
        source in a fixed order (``file_indices``: the TFRecord files to read, by default all),
        without the records whose image does not decode."""
        source = self.source
        if source.kind == "tfds":
            from tensorflow_datasets import decode

            dataset = source.tfds_builder.as_dataset(
                split=source.tfds_split, shuffle_files=False, as_supervised=True,
                decoders={"image": decode.SkipDecoding()})
            return dataset.map(lambda x, y: (x, tf.cast(y, tf.int64)))
        if file_indices is None:
            file_indices = tf.range(len(source.files))
        records = _keyed_records(source.files, file_indices)
        if source.skip_keys is not None and len(source.skip_keys):
            skip = tf.constant(source.skip_keys, tf.int64)
            # Undecodable records are few (each one is named when the source is opened).
            records = records.filter(lambda key, record: tf.reduce_all(tf.not_equal(skip, key)))
        return records.map(lambda key, record: _parse_example(record, source.label_offset),
                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def _cache_images(self):
        """Returns ``(uint8 images at image_size, labels)`` of the source, decoded once."""
        if self._cached is None:
            if self.source.kind == "folder":
                records, labels, load = self._folder_table()
                dataset = tf.data.Dataset.from_tensor_slices((records, labels)).map(
                    lambda r, y: (load(r), y), num_parallel_calls=tf.data.AUTOTUNE)
            else:
                dataset = self._records().map(lambda x, y: (_decode(x), y),
                                              num_parallel_calls=tf.data.AUTOTUNE)
            dataset = dataset.map(lambda x, y: (resize_uint8(x, self.image_size), y),
                                  num_parallel_calls=tf.data.AUTOTUNE).batch(256)
            log.info("caching the %d images of %s at %dx%d", self.source.num_examples,
                     self.source.description, self.image_size, self.image_size)
            batches = list(dataset.as_numpy_iterator())
            self._cached = (np.concatenate([x for x, _ in batches]),
                            np.concatenate([y for _, y in batches]))
        return self._cached

    def _finish(self, images, labels):
        """Returns a batch preprocessed for the model, with one-hot labels."""
        return (kdata.preprocess(tf.cast(images, tf.float32), self.mode),
                tf.one_hot(labels, self.num_classes))

    def _options(self, distribute_policy):
        options = tf.data.Options()
        options.deterministic = self.deterministic
        options.experimental_distribute.auto_shard_policy = distribute_policy
        return options

    # -- datasets --------------------------------------------------------------------------

    def _epoch_order(self, count, epoch):
        """Returns ``count`` row indices of one epoch: whole random permutations of the
        source (as many as ``count`` needs), seeded by ``(seed, epoch)``."""
        n = self.source.num_examples
        key = _fold(tf.constant([self.seed, 0], tf.int64), epoch)
        perms = [tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64),
                                                          seed=_fold(key, r))
                 for r in range(math.ceil(count / n))]
        return tf.concat(perms, 0)[:count]

    def train_dataset(self, first_epoch: int = 0, skip_steps: int = 0,
                      input_context: Optional[tf.distribute.InputContext] = None
                      ) -> tf.data.Dataset:
        """Returns the endless, shuffled, augmented training ``tf.data.Dataset``.

        Elements are ``(images, one-hot labels)`` batches of the per-replica batch size; every
        ``steps_per_epoch`` global batches make one epoch.

        Args:
          first_epoch: the epoch the dataset starts at.
          skip_steps: global steps of ``first_epoch`` already done (resuming mid-epoch).
          input_context: the ``tf.distribute.InputContext`` of this input pipeline; each
            pipeline reads a disjoint share of every global batch.
        """
        pipelines, pipeline_id, per_replica = 1, 0, self.batch_size
        if input_context is not None:
            pipelines = input_context.num_input_pipelines
            pipeline_id = input_context.input_pipeline_id
            if self.batch_size % input_context.num_replicas_in_sync:
                raise ValueError(
                    f"`batch_size`={self.batch_size} (global) must be a multiple of the "
                    f"{input_context.num_replicas_in_sync} replicas of the strategy"
                )
            per_replica = input_context.get_per_replica_batch_size(self.batch_size)
        epoch_size = self.steps_per_epoch * self.batch_size
        run_key = tf.constant([self.seed, 1], tf.int64)
        table = self._table()
        if table is not None:
            records, labels, load = table

            def epoch(e):
                order = self._epoch_order(epoch_size, e)
                elements = tf.data.Dataset.from_tensor_slices(
                    (tf.gather(records, order), tf.gather(labels, order),
                     tf.range(epoch_size, dtype=tf.int64)))
                return elements.shard(pipelines, pipeline_id).map(
                    lambda r, y, position: (r, y, _fold(_fold(run_key, e), position)))
        else:
            load = _decode
            files = None if self.source.kind == "tfds" else self.source.files
            shard_files = (files is not None and pipelines > 1 and len(files) >= pipelines)
            tfds_records = self._records() if files is None else None

            def epoch(e):
                key = _fold(run_key, e)
                if files is None:
                    stream = tfds_records
                else:
                    order = tf.random.experimental.stateless_shuffle(
                        tf.range(len(files)), seed=_fold(key, -1))
                    stream = self._records(order[pipeline_id::pipelines] if shard_files else order)
                # A global seed of 0 (keras.utils.set_random_seed(0)) makes tf.random's seed
                # check compare this tensor seed with 0 as a Python bool; the order comes from
                # the pipeline's own seed alone, so the function graph needs no global seed.
                tf.compat.v1.get_default_graph().seed = None
                shuffle_seed = tf.random.stateless_uniform(
                    [], _fold(key, -2), minval=None, maxval=None, dtype=tf.int64)
                # Shuffled passes over the records; a longer epoch goes on into the next pass.
                stream = stream.shuffle(self.shuffle_buffer, seed=shuffle_seed).repeat()
                if shard_files:
                    stream = stream.take(epoch_size // pipelines).enumerate().map(
                        lambda i, x: (x[0], x[1], i * pipelines + pipeline_id))
                else:
                    stream = stream.take(epoch_size).enumerate().map(
                        lambda i, x: (x[0], x[1], i)).shard(pipelines, pipeline_id)
                return stream.map(lambda r, y, position: (r, y, _fold(key, position)))

        dataset = tf.data.Dataset.counter(first_epoch).flat_map(epoch)
        dataset = dataset.skip(skip_steps * (self.batch_size // pipelines))
        dataset = dataset.map(
            lambda r, y, seed: (augment_image(load(r), self.image_size, self.augment, seed), y),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=self.deterministic)
        dataset = dataset.batch(per_replica, drop_remainder=True).map(
            self._finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=self.deterministic)
        options = self._options(tf.data.experimental.AutoShardPolicy.OFF)
        return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)

    def eval_dataset(self) -> tf.data.Dataset:
        """Returns the evaluation ``tf.data.Dataset``: every example once, in a fixed order,
        ``(images, one-hot labels)`` batches of the global batch size (the last may be partial).

        Under a ``tf.distribute`` strategy Keras shards it by examples across workers.
        """
        table = self._table()
        if table is not None:
            records, labels, load = table
            dataset = tf.data.Dataset.from_tensor_slices((records, labels))
        else:
            dataset, load = self._records(), _decode
        dataset = dataset.map(lambda r, y: (eval_view(load(r), self.image_size, self.augment), y),
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        dataset = dataset.batch(self.batch_size).map(self._finish,
                                                     num_parallel_calls=tf.data.AUTOTUNE)
        options = self._options(tf.data.experimental.AutoShardPolicy.DATA)
        return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def make_dataset(source: Union[str, Path, kdata.ZipFolder, DataSource], image_size: int,
                 mode: str, training: bool, batch_size: int, augment: Optional[str] = None,
                 seed: int = 0, deterministic: bool = True, cache: bool = False,
                 **source_kwargs: Any) -> tf.data.Dataset:
    """Returns the ``tf.data.Dataset`` of ``source``: ``Input(...).train_dataset()`` when
    ``training`` (endless, shuffled, augmented), ``Input(...).eval_dataset()`` otherwise.

    ``source`` is anything ``open_source`` takes (``source_kwargs`` go to it); ``mode`` is the
    model's ``kerasnets.data.preprocess`` mode; the other arguments are those of ``Input``.
    """
    pipeline = Input(open_source(source, **source_kwargs), image_size, mode, batch_size,
                     augment=augment, seed=seed, deterministic=deterministic, cache=cache)
    return pipeline.train_dataset() if training else pipeline.eval_dataset()
