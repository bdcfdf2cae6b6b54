"""The papers' training augmentations and evaluation views, one image at a time: the one place
every kerasnets input pipeline (``loader.Input``, ``folders.as_dataset``) takes them from.

Every random choice is a stateless function of a ``[2]`` int64 seed, so a pipeline that derives
the seed from an example's place in the run reproduces its augmentation exactly (what resuming
mid-epoch needs).
"""

from typing import Optional, Tuple

import tensorflow as tf

AUGMENTATIONS = (None, "imagenet", "cifar")
# Random-resized crop (Szegedy et al. 2015, "Going deeper with convolutions", sec. 6; the area
# and aspect ranges of torchvision's RandomResizedCrop), then a horizontal flip.
CROP_AREA = (0.08, 1.0)
CROP_ASPECT = (3 / 4, 4 / 3)
# Evaluation of "imagenet"-augmented models: the central 87.5% of the image, resized
# (TF-Slim inception_preprocessing, which MobileNet V1-V3 were evaluated with).
EVAL_CENTRAL_FRACTION = 0.875
# The CIFAR translation pads by 1/8 of the side: 4 pixels on CIFAR's 32x32, the augmentation of
# He et al. 2016 (sec. 4.2) that DenseNet (Huang et al. 2017, sec. 4.1, "C10+") follows.
CIFAR_PAD_FRACTION = 1 / 8


def cifar_pad(size: int) -> int:
    """Returns the zero padding (pixels per side) of the CIFAR translation of ``size`` images:
    ``size / 8``, at least 1 (4 for 32x32)."""
    return max(1, int(size * CIFAR_PAD_FRACTION))


def bilinear_uint8(images: tf.Tensor, size: int) -> tf.Tensor:
    """Returns ``uint8`` ``images`` (one ``(rows, cols, 3)`` image or a batch) resized to
    ``size`` x ``size``: bilinear, antialiased when shrinking, rounded back to ``uint8``. The one
    resize of kerasnets' pipelines (``resize_uint8``, ``kerasnets.data.resize_images``)."""
    resized = tf.image.resize(images, (size, size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def resize_uint8(image: tf.Tensor, size: int) -> tf.Tensor:
    """Returns ``image`` resized to ``size`` x ``size`` (``bilinear_uint8``), unchanged when it
    already has that size."""
    known = image.shape[:2]
    if known.is_fully_defined():
        # Decided while tracing: a tf.cond would also trace the branch that asserts the other
        # size, and fail (a cached 64x64 image centrally cropped to 56x56, say).
        return image if tuple(known) == (size, size) else bilinear_uint8(image, size)
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], [size, size]))
    resized = tf.cond(same, lambda: image, lambda: bilinear_uint8(image, size))
    resized.set_shape((size, size, 3))
    return resized


def random_resized_crop(image: tf.Tensor, size: int, seed: tf.Tensor,
                        area: Tuple[float, float] = CROP_AREA,
                        aspect: Tuple[float, float] = CROP_ASPECT) -> tf.Tensor:
    """Returns a random crop of ``image`` (``area`` fraction, ``aspect`` ratio) resized to
    ``size`` x ``size``: the ImageNet training crop; ``seed`` is a stateless ``[2]`` seed."""
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), tf.zeros([1, 0, 4], tf.float32), seed=seed, min_object_covered=0.0,
        aspect_ratio_range=aspect, area_range=area, max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    return resize_uint8(tf.slice(image, begin, extent), size)


def central_crop(image: tf.Tensor, size: int,
                 fraction: float = EVAL_CENTRAL_FRACTION) -> tf.Tensor:
    """Returns the central ``fraction`` of ``image`` resized to ``size`` x ``size``: the
    ImageNet evaluation crop."""
    return resize_uint8(tf.image.central_crop(image, fraction), size)


def pad_crop(image: tf.Tensor, seed: tf.Tensor, pad: Optional[int] = None) -> tf.Tensor:
    """Returns ``image`` zero-padded by ``pad`` pixels per side (default ``cifar_pad`` of its
    side) and randomly cropped back to its size: the CIFAR translation; ``seed`` is a stateless
    ``[2]`` seed."""
    if pad is None:
        pad = cifar_pad(image.shape[0])
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    return tf.image.stateless_random_crop(padded, tf.shape(image), seed=seed)


def augment_image(image: tf.Tensor, size: int, augment: Optional[str],
                  seed: tf.Tensor) -> tf.Tensor:
    """Returns the ``size`` x ``size`` ``uint8`` training view of a decoded ``image``.

    ``augment``: ``"imagenet"`` (random-resized crop, flip), ``"cifar"`` (resize, ``pad_crop``,
    flip) or None (resize only); ``seed`` is a stateless ``[2]`` int64 seed.
    """
    if augment not in AUGMENTATIONS:
        raise ValueError(f"`augment` must be one of {AUGMENTATIONS}; received augment={augment!r}")
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    if augment == "imagenet":
        image = random_resized_crop(image, size, crop_seed)
    else:
        image = resize_uint8(image, size)
        if augment == "cifar":
            image = pad_crop(image, crop_seed, cifar_pad(size))
    if augment is not None:
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    return image


def eval_view(image: tf.Tensor, size: int, augment: Optional[str]) -> tf.Tensor:
    """Returns the evaluation view of a decoded ``image`` for a model trained with ``augment``:
    the central crop after ``"imagenet"``, the resized image otherwise."""
    return central_crop(image, size) if augment == "imagenet" else resize_uint8(image, size)
