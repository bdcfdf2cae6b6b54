"""Image-folder datasets: decoding, resizing, per-family preprocessing, and the embedded default.

An image folder holds one sub-folder per class (``<root>/<class>/<image>``), like
``../shared/data/cifar10/train``. The same layout is read from a directory or from inside a zip
file; ``embedded_dataset()`` names the small real CIFAR-10 subset that ships with kerasnets
(``kerasnets/data/cifar10_mini.zip``, see ``kerasnets/data/README.md``), so the converter and
the demo always have real images, even without ``../shared``.

Images are kept as ``uint8`` arrays resized to the model's input size; ``preprocess`` maps them
to the input range a model expects (``preprocessing_mode``), the same way for training,
evaluation and the TFLite converter's representative dataset.
"""

import dataclasses
import inspect
import logging
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

if TYPE_CHECKING:
    from kerasnets.models.registry import ModelEntry

log = logging.getLogger(__name__)
# NumPy arrays, or float32 tf.Tensor inside tf.data maps.
ArrayLike = Any

EMBEDDED_ZIP = Path(__file__).resolve().parent / "cifar10_mini.zip"
EMBEDDED_SPLITS = ("train", "test")

# The input range a model expects (``preprocess`` modes):
# - "raw":     [0, 255] as decoded: the model normalizes inside (``include_preprocessing=True``,
#              MobileNetV3's default).
# - "tf":      x / 127.5 - 1, i.e. [-1, 1] (keras.applications preprocess_input "tf" mode):
#              MobileNetV1/V2, MobileNetV3 without its rescaling layer, Xception.
# - "torch":   (x / 255 - mean) / std with the ImageNet mean/std (keras.applications "torch"
#              mode): the ImageNet DenseNets; MobileNetV4 (TF Model Garden normalizes with the
#              same ImageNet mean/std); AlexNet and ZFNet (torchvision's AlexNet recipe).
# - "caffe":   RGB -> BGR, minus the ImageNet BGR mean, no scaling (keras.applications "caffe"
#              mode): ResNet (keras.applications.ResNet50's weights), GoogLeNet (the Caffe
#              reference model's layer names and weights), VGG (keras.applications.VGG16/19's).
# - "cifar10": (x / 255 - mean) / std with the CIFAR-10 training-set mean/std: the CIFAR
#              DenseNets and early-exit networks, the normalization of the DenseNet paper's
#              CIFAR experiments (and what their include_preprocessing=True does inside).
PREPROCESSING_MODES = ("raw", "tf", "torch", "caffe", "cifar10")
# The mode of each registry ``family`` when the model has no preprocessing inside.
FAMILY_MODES = {
    "mobilenet_v1": "tf",
    "mobilenet_v2": "tf",
    "mobilenet_v3": "tf",
    "mobilenet_v4": "torch",
    "xception": "tf",
    "densenet": "torch",
    "resnet": "caffe",
    "googlenet": "caffe",
    "vgg": "caffe",
    "alexnet": "torch",
    "densenet_cifar": "cifar10",
    "early_exit": "cifar10",
}
_STATS = {
    "torch": (np.array([0.485, 0.456, 0.406], "float32"),
              np.array([0.229, 0.224, 0.225], "float32")),
    "cifar10": (np.array([0.4914, 0.4822, 0.4465], "float32"),
                np.array([0.2470, 0.2435, 0.2616], "float32")),
}
CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68], "float32")


@dataclasses.dataclass(frozen=True)
class ZipFolder:
    """An image folder stored inside a zip file: members ``<folder>/<class>/<image>``."""

    zip_path: Path
    folder: str

    def __str__(self):
        return f"{self.zip_path}:{self.folder}/"


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """Decoded images of an image folder.

    ``images``: ``uint8`` array ``(n, size, size, 3)``; ``labels``: ``int32`` indices into
    ``class_names`` (sorted folder names); ``skipped``: the files that could not be decoded.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: Tuple[str, ...]
    source: str
    skipped: Tuple[str, ...]

    def __len__(self):
        return len(self.labels)


def embedded_dataset(split: str = "train") -> ZipFolder:
    """Returns the ``ZipFolder`` of a split (``"train"`` or ``"test"``) of the embedded dataset."""
    if split not in EMBEDDED_SPLITS:
        raise ValueError(f"`split` must be one of {EMBEDDED_SPLITS}; received split={split!r}")
    if not EMBEDDED_ZIP.is_file():
        raise ValueError(
            f"the embedded dataset {EMBEDDED_ZIP} is missing from this kerasnets installation; "
            "rebuild it with benchmarks/make_embedded_dataset.py or pass an image folder"
        )
    return ZipFolder(EMBEDDED_ZIP, split)


def zip_folder(spec: Union[str, Path, ZipFolder]) -> Optional[ZipFolder]:
    """Returns the ``ZipFolder`` a command-line data path names (a ``ZipFolder`` as is),
    ``None`` for other paths.

    ``ARCHIVE.zip:FOLDER`` names the image folder ``FOLDER/<class>/<image>`` inside the zip;
    ``ARCHIVE.zip`` alone names its one top-level folder when every member lies under a single
    folder (``train50k.zip`` holds ``train/<class>/NNNN.jpg``), else the zip's root.

    Raises ``ValueError`` when the zip file does not exist or cannot be read, or holds no
    ``FOLDER`` (the message lists its top-level folders).
    """
    if isinstance(spec, ZipFolder):
        return spec
    text = str(spec)
    archive, sep, folder = text.partition(".zip:")
    if sep:
        archive += ".zip"
    elif text.lower().endswith(".zip"):
        archive, folder = text, None
    else:
        return None
    if not Path(archive).is_file():
        raise ValueError(f"zip file {archive!r} (of data {text!r}) does not exist")
    try:
        with zipfile.ZipFile(archive) as handle:
            names = handle.namelist()
    except (OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"cannot read the zip file {archive}: {err}") from err
    tops = _top_folders(names)
    if folder is None:
        loose = [name for name in names if "/" not in name.strip("/") and not name.endswith("/")]
        folder = tops[0] if len(tops) == 1 and not loose else ""
    elif folder.strip("/") and not any(name.startswith(folder.strip("/") + "/")
                                       for name in names):
        raise ValueError(f"data {text!r}: the zip file {archive} has no folder "
                         f"{folder.strip('/')!r}; its top-level folders: {tops}")
    return ZipFolder(Path(archive), folder.strip("/"))


def preprocessing_mode(entry: "ModelEntry", model_kwargs: Optional[Dict[str, Any]] = None) -> str:
    """Returns the ``preprocess`` mode of the inputs a registered model expects.

    Args:
      entry: the model's ``kerasnets.models.registry.ModelEntry`` (``get_entry(name)``).
      model_kwargs: the keyword arguments the model is built with. A model built with
        ``include_preprocessing=True`` (given, or its builder's default) normalizes inside and
        takes [0, 255] ("raw"); otherwise its family's mode applies (``FAMILY_MODES``).
    """
    parameter = inspect.signature(entry.builder).parameters.get("include_preprocessing")
    default = parameter.default if parameter is not None else False
    kwargs = {**entry.fixed_kwargs, **(model_kwargs or {})}
    if kwargs.get("include_preprocessing", default):
        return "raw"
    if entry.family not in FAMILY_MODES:
        raise ValueError(
            f"model {entry.name!r} has family {entry.family!r}, whose input range "
            f"kerasnets.data.FAMILY_MODES does not record (known: {sorted(FAMILY_MODES)})"
        )
    return FAMILY_MODES[entry.family]


def preprocess(images: ArrayLike, mode: str) -> ArrayLike:
    """Returns float32 ``images`` (in [0, 255]) mapped to the input range of ``mode``.

    Works on NumPy arrays and on float32 ``tf.Tensor`` (e.g. inside ``tf.data`` maps).
    """
    if mode not in PREPROCESSING_MODES:
        raise ValueError(f"`mode` must be one of {PREPROCESSING_MODES}; received mode={mode!r}")
    if isinstance(images, np.ndarray):
        images = images.astype("float32")
    if mode == "tf":
        return images / 127.5 - 1.0
    if mode in _STATS:
        mean, std = _STATS[mode]
        return (images / 255.0 - mean) / std
    if mode == "caffe":
        return images[..., ::-1] - CAFFE_BGR_MEAN
    return images


def _as_folder(source):
    """Returns ``source`` with an ``ARCHIVE.zip[:FOLDER]`` path read as its ``ZipFolder``
    (``zip_folder``): the one step that lets every image-folder reader take zip paths."""
    return zip_folder(source) or source


def _members(source):
    """Returns ``(description, {class name: [(file name, read_bytes)]})`` of an image folder
    (class folders without files included)."""
    if isinstance(source, ZipFolder):
        try:
            archive = zipfile.ZipFile(source.zip_path)
        except (OSError, zipfile.BadZipFile) as err:
            raise ValueError(f"cannot read the zip file {source.zip_path}: {err}") from err
        prefix = source.folder.strip("/") + "/" if source.folder.strip("/") else ""
        classes = {}
        for name in sorted(archive.namelist()):
            parts = name[len(prefix):].split("/") if name.startswith(prefix) else []
            # Only <class>/<file>: directory entries and deeper files are not images of a class.
            if len(parts) == 2 and parts[0] and not parts[0].startswith("."):
                members = classes.setdefault(parts[0], [])
                if parts[1] and not parts[1].startswith("."):
                    members.append((name, lambda name=name: archive.read(name)))
        return str(source), classes
    root = Path(source)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise ValueError(f"image folder {str(root)!r} {what}")
    classes = {}
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in class_dir.iterdir() if p.is_file() and not p.name.startswith("."))
        classes[class_dir.name] = [(str(p), p.read_bytes) for p in files]
    return str(root), classes


def _top_folders(names, prefix=""):
    """Returns the sorted names of the folders directly under ``prefix`` among zip member
    ``names`` (a zip need not list its folders as members: they show in deeper paths)."""
    return sorted({name[len(prefix):].split("/", 1)[0] for name in names
                   if name.startswith(prefix) and "/" in name[len(prefix):].strip("/")})


def _zip_subfolders(source):
    """Returns ``_top_folders`` of a ``ZipFolder``'s folder; [] for a folder on disk."""
    if not isinstance(source, ZipFolder):
        return []
    prefix = source.folder.strip("/") + "/" if source.folder.strip("/") else ""
    with zipfile.ZipFile(source.zip_path) as archive:
        return _top_folders(archive.namelist(), prefix)


def _classes(source):
    """Returns ``_members(source)``; raises ``ValueError`` when it holds no class with files."""
    description, classes = _members(source)
    if not any(classes.values()):
        hint = ""
        folders = sorted(classes) or _zip_subfolders(source)
        if folders:  # sub-folders without images: a folder of splits (train/, test/) perhaps
            first = "train" if "train" in folders else folders[0]
            example = (f"{source.zip_path}:{first}" if isinstance(source, ZipFolder)
                       else str(Path(source) / first))
            hint = (f"; its sub-folders {folders} hold no images themselves: if they "
                    f"are splits, give one of them, e.g. {example!r}")
        raise ValueError(
            f"image folder {description!r} is empty: it needs one sub-folder of images per "
            f"class, e.g. train/cat/0001.jpg{hint}"
        )
    return description, classes


def class_names(source: Union[str, Path, ZipFolder]) -> Tuple[str, ...]:
    """Returns the sorted class names (sub-folders holding files) of an image folder.

    Raises ``ValueError`` when the folder is missing or holds no class sub-folder with files.
    """
    return tuple(sorted(name for name, files in _classes(_as_folder(source))[1].items()
                        if files))


def check_same_classes(first: Union["ImageSet", Sequence[str]],
                       second: Union["ImageSet", Sequence[str]],
                       names: Tuple[str, str] = ("--data", "--eval-data")) -> Tuple[str, ...]:
    """Returns the class names shared by two image folders; raises ``ValueError`` if they differ.

    ``first`` and ``second`` are ``ImageSet`` objects or class-name sequences.
    """
    a = tuple(getattr(first, "class_names", first))
    b = tuple(getattr(second, "class_names", second))
    if a != b:
        only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same class folders; only in {names[0]}: "
            f"{only_a or 'none'}, only in {names[1]}: {only_b or 'none'}"
        )
    return a


def decode_image(data: bytes) -> np.ndarray:
    """Returns the ``uint8`` ``(rows, cols, 3)`` array of encoded image bytes.

    JPEG, PNG, BMP and GIF (first frame) are decoded by TensorFlow; grey images become RGB.
    Raises ``tf.errors.InvalidArgumentError`` when ``data`` is not a decodable image.
    """
    import tensorflow as tf

    return tf.io.decode_image(data, channels=3, expand_animations=False).numpy()


def resize_images(images: Sequence[np.ndarray], image_size: int,
                  batch_size: int = 256) -> np.ndarray:
    """Returns the ``uint8`` array ``(n, image_size, image_size, 3)`` of a list of images.

    Images of another size are resized bilinearly (antialiased when shrinking), in batches of
    images of the same size (``kerasnets.data.augment.bilinear_uint8``).
    """
    from kerasnets.data.augment import bilinear_uint8

    out = np.empty((len(images), image_size, image_size, 3), dtype="uint8")
    by_shape = {}
    for i, image in enumerate(images):
        by_shape.setdefault(image.shape, []).append(i)
    for shape, indices in by_shape.items():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            batch = np.stack([images[i] for i in chunk])
            if shape[:2] != (image_size, image_size):
                batch = bilinear_uint8(batch, image_size).numpy()
            out[chunk] = batch
    return out


@dataclasses.dataclass(frozen=True)
class ImageListing:
    """The decodable images of an image folder, in class order then file order.

    ``records``: the file paths (``from_files``) or the encoded bytes of zip members;
    ``labels``: ``int64`` indices into ``class_names`` (sorted folder names); ``names``: the
    file names; ``skipped``: the files that do not decode (``kerasnets.data.screen``).
    """

    description: str
    class_names: Tuple[str, ...]
    records: tuple
    labels: np.ndarray
    names: Tuple[str, ...]
    from_files: bool
    skipped: Tuple[str, ...]


def _screen_folder(source, per_class=None, keep_images=False, progress=False):
    """Returns ``(ImageListing, decoded images or None)`` of an image folder, after the rules of
    ``kerasnets.data.screen`` (undecodable files skipped and named; two classes or more, each
    with an image)."""
    import tensorflow as tf

    from kerasnets.data import screen

    source = _as_folder(source)
    description, classes = _classes(source)
    names = tuple(sorted(classes))
    entries = [(label, name, read) for label, class_name in enumerate(names)
               for name, read in classes[class_name][:per_class]]
    from_files = not isinstance(source, ZipFolder)
    records = tuple(name if from_files else read() for _, name, read in entries)
    keyed = tf.data.Dataset.from_tensor_slices((np.arange(len(records), dtype="int64"),
                                                list(records)))
    kept, images = screen.decodable(
        keyed, tf.io.read_file if from_files else tf.identity, keep_images, len(records),
        f"decoding {Path(description).name or description}", progress)
    skipped = sorted(set(range(len(entries))) - set(kept.tolist()))
    screen.report_skipped([(entries[i][1], screen.failure(entries[i][2])) for i in skipped],
                          len(entries), description)
    labels = np.asarray([entries[i][0] for i in kept], dtype="int64")
    counts = np.bincount(labels, minlength=len(names))
    screen.check_classes(dict(zip(names, counts.tolist())), f"image folder {description!r}")
    listing = ImageListing(description, names, tuple(records[i] for i in kept), labels,
                           tuple(entries[i][1] for i in kept), from_files,
                           tuple(entries[i][1] for i in skipped))
    return listing, images


def list_images(source: Union[str, Path, ZipFolder]) -> ImageListing:
    """Returns the ``ImageListing`` of the decodable images of an image folder (every image is
    decoded once to check it; none is kept).

    Raises:
      ValueError: a missing or empty folder, fewer than two classes, or a class folder without
        a decodable image (named).
    """
    return _screen_folder(source)[0]


def load_image_folder(source: Union[str, Path, ZipFolder], image_size: int,
                      per_class: Optional[int] = None, progress: bool = True) -> ImageSet:
    """Returns the ``ImageSet`` of an image folder, decoded and resized to ``image_size``.

    Args:
      source: a directory path, or a ``ZipFolder`` (e.g. ``embedded_dataset("train")``).
      image_size: side of the square images returned.
      per_class: if set, only the first ``per_class`` files (sorted by name) of each class.
      progress: show a tqdm progress bar while decoding (on a terminal).

    Every file of a class folder is read, except hidden ones (names starting with "."); files
    that cannot be decoded are skipped with a warning each and a count, never silently, and
    listed in ``ImageSet.skipped`` (the rule of every data path: ``kerasnets.data.screen``).

    Raises:
      ValueError: missing or empty folder, fewer than two classes, or a class folder without a
        decodable image (named).
    """
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size <= 0:
        raise ValueError(f"`image_size` must be a positive integer; received {image_size!r}")
    listing, images = _screen_folder(source, per_class, keep_images=True, progress=progress)
    return ImageSet(resize_images(images, image_size), listing.labels.astype("int32"),
                    listing.class_names, listing.description, listing.skipped)


def split_holdout(image_set: ImageSet, fraction: float = 0.1,
                  seed: int = 0) -> Tuple[ImageSet, ImageSet]:
    """Returns ``(rest, held_out)``: ``ImageSet`` objects with ``fraction`` of each class held out.

    The held-out images are drawn per class (stratified) with ``seed``, at least one per class
    that has two images or more.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"`fraction` must be in (0, 1); received fraction={fraction!r}")
    rng = np.random.default_rng(seed)
    held = []
    for label in range(len(image_set.class_names)):
        indices = np.flatnonzero(image_set.labels == label)
        if len(indices) > 1:
            count = max(1, int(round(fraction * len(indices))))
            held.extend(rng.choice(indices, size=count, replace=False))
    mask = np.zeros(len(image_set), dtype=bool)
    mask[held] = True

    def subset(keep, suffix):
        return dataclasses.replace(image_set, images=image_set.images[keep],
                                   labels=image_set.labels[keep],
                                   source=f"{image_set.source} ({suffix})")

    return subset(~mask, f"{1 - fraction:.0%}"), subset(mask, f"held-out {fraction:.0%}")


def as_dataset(images: np.ndarray, labels: np.ndarray, mode: str, batch_size: int = 64,
               training: bool = False, seed: Optional[int] = None) -> "tf.data.Dataset":
    """Returns a batched ``tf.data.Dataset`` of ``(preprocessed float32 images, labels)``.

    One pass over ``images`` (``uint8`` ``(n, size, size, 3)``) and their ``labels`` as given
    (e.g. sparse class indices). ``training=True`` reshuffles every pass and applies the CIFAR
    augmentation of ``kerasnets.data.augment`` (zero padding by 1/8 of the side, random crop,
    random horizontal flip: He et al., 2016; Huang et al., 2017), with random numbers drawn from
    ``seed``.
    """
    import tensorflow as tf

    from kerasnets.data.augment import augment_image

    if mode not in PREPROCESSING_MODES:
        raise ValueError(f"`mode` must be one of {PREPROCESSING_MODES}; received mode={mode!r}")
    size = images.shape[1]
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if training:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
        # One stateless [2] seed per example, new ones every pass.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip((dataset, seeds)).map(
            lambda example, pair: (augment_image(example[0], size, "cifar", pair), example[1]),
            num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(lambda x, y: (preprocess(tf.cast(x, tf.float32), mode), y),
                          num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
