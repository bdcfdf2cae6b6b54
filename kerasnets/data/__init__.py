"""Images in, tensors out: image folders (directories or zips), the embedded CIFAR-10 subset,
per-family preprocessing (``folders``), which examples are images (``screen``, the one rule of
every data path), the papers' augmentations (``augment``, the one copy every pipeline uses), and
the streaming ``tf.data`` input pipelines (``loader``)."""

from kerasnets.data.folders import (
    CAFFE_BGR_MEAN, EMBEDDED_SPLITS, EMBEDDED_ZIP, FAMILY_MODES, PREPROCESSING_MODES,
    ImageListing, ImageSet, ZipFolder, as_dataset, check_same_classes, class_names, decode_image,
    embedded_dataset, list_images, load_image_folder, preprocess, preprocessing_mode,
    resize_images, split_holdout, zip_folder,
)

__all__ = [
    "CAFFE_BGR_MEAN", "EMBEDDED_SPLITS", "EMBEDDED_ZIP", "FAMILY_MODES", "PREPROCESSING_MODES",
    "ImageListing", "ImageSet", "ZipFolder", "as_dataset", "check_same_classes", "class_names",
    "decode_image", "embedded_dataset", "list_images", "load_image_folder", "preprocess",
    "preprocessing_mode", "resize_images", "split_holdout", "zip_folder",
]
