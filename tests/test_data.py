"""Tests of kerasnets.data: image folders, the embedded dataset, per-family preprocessing."""

import dataclasses
import logging
import zipfile

import numpy as np
import pytest
import tensorflow as tf

import kerasnets
from kerasnets import data
from kerasnets.models.registry import get_entry
from kerasnets._keras import keras

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")


def _write_folder(root, classes, per_class=3, size=(20, 24), fmt="png"):
    """Writes ``per_class`` random images of each class under ``root``; returns the arrays."""
    rng = np.random.default_rng(0)
    written = {}
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 256, size + (3,), dtype=np.uint8)
            encoded = tf.io.encode_png(image) if fmt == "png" else tf.io.encode_jpeg(image)
            (root / name / f"{i:04d}.{fmt}").write_bytes(encoded.numpy())
            written[(name, i)] = image
    return written


def test_embedded_dataset_is_the_documented_cifar10_subset():
    with zipfile.ZipFile(data.EMBEDDED_ZIP) as archive:
        names = archive.namelist()
    assert data.EMBEDDED_ZIP.stat().st_size < 3_500_000
    for split, per_class in (("train", 200), ("test", 50)):
        assert data.class_names(data.embedded_dataset(split)) == CIFAR_CLASSES
        for name in CIFAR_CLASSES:
            assert sum(n.startswith(f"{split}/{name}/") for n in names) == per_class


def test_embedded_dataset_holds_real_images():
    images = data.load_image_folder(data.embedded_dataset("test"), 32, per_class=5,
                                    progress=False)
    assert images.images.shape == (50, 32, 32, 3) and images.images.dtype == np.uint8
    assert not images.skipped
    assert list(np.bincount(images.labels)) == [5] * 10
    # Natural photos: neighbouring pixels are strongly correlated, unlike uniform noise.
    x = images.images.astype("float32")
    correlation = np.corrcoef(x[:, :, :-1].ravel(), x[:, :, 1:].ravel())[0, 1]
    assert correlation > 0.8


def test_embedded_images_are_byte_identical_to_the_shared_cifar10(cifar_dir):
    with zipfile.ZipFile(data.EMBEDDED_ZIP) as archive:
        for name in ("train/airplane/0000.jpg", "train/truck/0199.jpg", "test/cat/0049.jpg"):
            assert archive.read(name) == (cifar_dir / name).read_bytes()


def test_folder_and_zip_give_the_same_images(tmp_path):
    written = _write_folder(tmp_path / "imgs", ["b", "a"], per_class=2)
    with zipfile.ZipFile(tmp_path / "imgs.zip", "w") as archive:
        for path in sorted((tmp_path / "imgs").rglob("*.png")):
            archive.write(path, f"split/{path.relative_to(tmp_path / 'imgs')}")
    from_folder = data.load_image_folder(tmp_path / "imgs", 20, progress=False)
    from_zip = data.load_image_folder(data.ZipFolder(tmp_path / "imgs.zip", "split"), 20,
                                      progress=False)
    assert from_folder.class_names == ("a", "b")
    assert list(from_folder.labels) == [0, 0, 1, 1]
    np.testing.assert_array_equal(from_folder.images, from_zip.images)
    np.testing.assert_array_equal(from_folder.labels, from_zip.labels)
    # PNG is lossless: decoding and resizing to the stored size gives the pixels back.
    np.testing.assert_array_equal(from_folder.images[2], tf.image.resize(
        written[("b", 0)], (20, 20), antialias=True).numpy().round().astype(np.uint8))


def test_command_line_zip_paths_name_the_folder_inside(tmp_path):
    from kerasnets.data import loader

    _write_folder(tmp_path / "imgs", ["b", "a"], per_class=2)
    files = sorted((tmp_path / "imgs").rglob("*.png"))
    with zipfile.ZipFile(tmp_path / "one.zip", "w") as archive:  # train50k.zip's layout
        for path in files:
            archive.write(path, f"train/{path.relative_to(tmp_path / 'imgs')}")
    with zipfile.ZipFile(tmp_path / "root.zip", "w") as archive:  # classes at the zip's root
        for path in files:
            archive.write(path, str(path.relative_to(tmp_path / "imgs")))
    assert data.zip_folder(tmp_path / "one.zip") == data.ZipFolder(tmp_path / "one.zip", "train")
    assert data.zip_folder(f"{tmp_path}/one.zip:train/") == data.ZipFolder(
        tmp_path / "one.zip", "train")
    assert data.zip_folder(tmp_path / "root.zip") == data.ZipFolder(tmp_path / "root.zip", "")
    assert data.zip_folder(tmp_path / "imgs") is None
    with pytest.raises(ValueError, match="zip file .*missing.zip.* does not exist"):
        data.zip_folder(tmp_path / "missing.zip:train")
    for spec in (tmp_path / "one.zip", f"{tmp_path}/one.zip:train", tmp_path / "root.zip"):
        source = loader.open_source(str(spec))
        assert (source.kind, source.num_examples, source.class_names) == ("folder", 4, ("a", "b"))
    # Every image-folder reader takes the same paths (convert --data, the benchmarks).
    assert data.class_names(f"{tmp_path}/one.zip:train") == ("a", "b")
    assert len(data.load_image_folder(tmp_path / "root.zip", 20, progress=False)) == 4
    with pytest.raises(ValueError, match=r"has no folder 'test'; its top-level folders: "
                                         r"\['train'\]"):
        loader.open_source(f"{tmp_path}/one.zip:test")


def test_images_are_resized_to_the_requested_size(tmp_path):
    _write_folder(tmp_path, ["x", "y"], per_class=1, size=(32, 32), fmt="jpg")
    images = data.load_image_folder(tmp_path, 64, progress=False)
    assert images.images.shape == (2, 64, 64, 3)


def test_undecodable_files_are_skipped_with_a_warning_and_a_count(tmp_path, caplog):
    _write_folder(tmp_path, ["a", "b"], per_class=2)
    (tmp_path / "a" / "broken.jpg").write_bytes(b"not an image at all")
    (tmp_path / "b" / "notes.txt").write_text("hello")
    with caplog.at_level(logging.WARNING, logger="kerasnets.data"):
        images = data.load_image_folder(tmp_path, 16, progress=False)
    assert len(images) == 4
    assert sorted(p.rsplit("/", 1)[-1] for p in images.skipped) == ["broken.jpg", "notes.txt"]
    assert "broken.jpg" in caplog.text and "notes.txt" in caplog.text
    assert "skipped 2 of 6 files" in caplog.text


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: p, "is empty"),
    (lambda p: (p / "only_dirs" / "a").mkdir(parents=True) or p / "only_dirs", "is empty"),
])
def test_missing_or_empty_folders_raise(tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        data.load_image_folder(make(tmp_path), 32, progress=False)


def test_a_folder_of_splits_names_the_split_to_give(tmp_path):
    """A folder or zip whose sub-folders are splits (train/<class>/...) holds no class folder of
    images itself: the error names the split path to give instead."""
    import re
    import zipfile

    archive = tmp_path / "splits.zip"
    with zipfile.ZipFile(archive, "w") as zipped:  # no directory entries, as many zips
        for split in ("test", "train"):
            zipped.writestr(f"{split}/cat/0001.jpg", b"not read")
    with pytest.raises(ValueError, match=r"sub-folders \['test', 'train'\] .*'"
                       + re.escape(f"{archive}:train") + "'"):
        data.load_image_folder(archive, 32, progress=False)
    (tmp_path / "folder" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"sub-folders \['train'\] .*folder/train'"):
        data.load_image_folder(tmp_path / "folder", 32, progress=False)


def test_folder_of_only_undecodable_files_raises(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="no decodable image"):
        data.load_image_folder(tmp_path, 32, progress=False)


def _one_class(root):
    _write_folder(root, ["cat"], per_class=2)


def _class_of_garbage(root):
    _write_folder(root, ["cat", "dog"], per_class=1)
    (root / "dog" / "0000.png").write_bytes(b"garbage")


def _empty_class(root):
    _write_folder(root, ["cat", "dog"], per_class=1)
    (root / "empty").mkdir()


@pytest.mark.parametrize("make, named", [
    (_one_class, "1 class ('cat')"),
    (_class_of_garbage, "class 'dog' has no decodable image"),
    (_empty_class, "class 'empty' has no decodable image"),
])
def test_fewer_than_two_classes_or_a_class_without_images_raise_naming_it(tmp_path, make, named):
    make(tmp_path)
    with pytest.raises(ValueError) as err:
        data.load_image_folder(tmp_path, 16, progress=False)
    assert named in str(err.value)
    with pytest.raises(ValueError) as err:
        data.list_images(tmp_path)
    assert named in str(err.value)


def test_different_class_sets_raise_naming_the_difference():
    with pytest.raises(ValueError, match=r"only in --data: \['cat'\], only in --eval-data: "
                                         r"\['dog'\]"):
        data.check_same_classes(("ant", "cat"), ("ant", "dog"))
    assert data.check_same_classes(("a", "b"), ("a", "b")) == ("a", "b")


def test_preprocess_matches_keras_applications():
    x = np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(data.preprocess(x, "tf"),
                               keras.applications.mobilenet_v2.preprocess_input(x.copy()),
                               atol=1e-6)
    np.testing.assert_allclose(data.preprocess(x, "torch"),
                               keras.applications.densenet.preprocess_input(x.copy()), atol=1e-5)
    np.testing.assert_allclose(data.preprocess(x, "caffe"),
                               keras.applications.resnet50.preprocess_input(x.copy()), atol=1e-4)
    np.testing.assert_array_equal(data.preprocess(x, "raw"), x)
    with pytest.raises(ValueError, match="mode"):
        data.preprocess(x, "inception")


@pytest.mark.parametrize("name", kerasnets.list_models())
def test_every_registered_model_has_a_preprocessing_mode(name):
    assert data.preprocessing_mode(get_entry(name)) in data.PREPROCESSING_MODES


@pytest.mark.parametrize("name, kwargs", [
    ("mobilenet_v3_small", {}),
    ("densenet_40_k12", {}),
])
def test_preprocessing_mode_equals_the_models_own_preprocessing(name, kwargs):
    """A model that normalizes inside ([0, 255] in) and the same model without its
    preprocessing fed ``preprocess(x, preprocessing_mode(...))`` compute the same outputs."""
    entry = get_entry(name)
    inside = kerasnets.create_model(name, input_shape=(32, 32, 3), classes=3,
                                    include_preprocessing=True)
    outside = kerasnets.create_model(name, input_shape=(32, 32, 3), classes=3,
                                     include_preprocessing=False)
    for layer in outside.layers:
        if layer.weights:
            layer.set_weights(inside.get_layer(layer.name).get_weights())
    assert data.preprocessing_mode(entry, {"include_preprocessing": True}) == "raw"
    mode = data.preprocessing_mode(entry, {"include_preprocessing": False})
    x = np.random.default_rng(2).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(outside(data.preprocess(x, mode)).numpy(), inside(x).numpy(),
                               atol=1e-4)


def test_unknown_family_raises():
    entry = get_entry("mobilenet_v2")
    with pytest.raises(ValueError, match="family 'no_such_family'"):
        data.preprocessing_mode(dataclasses.replace(entry, family="no_such_family"))


def test_training_dataset_augments_and_evaluation_dataset_does_not():
    images = np.random.default_rng(3).integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)
    labels = np.arange(10, dtype=np.int32)
    (x, y), = data.as_dataset(images, labels, "tf", batch_size=10).take(1)
    np.testing.assert_allclose(x.numpy(), images / 127.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(y.numpy(), labels)
    (x, y), = data.as_dataset(images, labels, "raw", batch_size=10, training=True,
                              seed=1).take(1)
    assert x.shape == (10, 16, 16, 3) and sorted(y.numpy()) == list(labels)
    augmented = x.numpy()[np.argsort(y.numpy())]
    assert not np.array_equal(augmented, images.astype("float32"))


def test_split_holdout_is_stratified_and_disjoint():
    images = np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1).repeat(3, axis=-1)
    labels = np.repeat(np.arange(4, dtype=np.int32), 10)
    full = data.ImageSet(images, labels, ("a", "b", "c", "d"), "x", ())
    rest, held = data.split_holdout(full, 0.2, seed=0)
    assert list(np.bincount(held.labels)) == [2, 2, 2, 2]
    assert len(rest) == 32
    assert not set(rest.images[:, 0, 0, 0]) & set(held.images[:, 0, 0, 0])
