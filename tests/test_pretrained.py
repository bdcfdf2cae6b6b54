"""The weights that ship inside kerasnets: ``create_model(name, weights="cifar10")``."""

import hashlib

import numpy as np
import pytest

import kerasnets
from kerasnets import data
from kerasnets.models import pretrained

# Top-1 of the shipped MobileNetV3-Small weights on the 2,000 test images of
# ../shared/data/cifar10/test, measured by the training run that made them (its evaluation after
# the last epoch, kerasnets/data/README.md). The embedded test split is 500 of those images.
REPORTED_TOP1 = 0.8475


def test_shipped_file_matches_its_recorded_sha256():
    entry = pretrained.CIFAR10["mobilenet_v3_small"]
    assert hashlib.sha256(entry.path.read_bytes()).hexdigest() == entry.sha256
    assert entry.path.stat().st_size < 10_000_000  # "a few MB"


def test_shipped_weights_reach_the_reported_accuracy_on_the_embedded_test_images():
    model = kerasnets.create_model("mobilenet_v3_small", weights="cifar10")
    size = model.input_shape[1]
    test = data.load_image_folder(data.embedded_dataset("test"), size, progress=False)
    assert test.class_names == pretrained.CIFAR10["mobilenet_v3_small"].class_names
    outputs = model.predict(data.preprocess(test.images, "raw"), batch_size=250, verbose=0)
    top1 = float(np.mean(outputs.argmax(-1) == test.labels))
    assert abs(top1 - REPORTED_TOP1) <= 0.02, (top1, REPORTED_TOP1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(weights="imagenet"), r"not a named weight set; the named weights are \['cifar10'\]"),
    (dict(weights="cifar100"), r"`weights`='cifar100' is not a named weight set"),
    (dict(weights="cifar10", classes=1000), r"need classes=10; received classes=1000"),
    (dict(weights="cifar10", input_shape=(224, 224, 3)), r"need input_shape=\(\d+, \d+, 3\); "
     r"received input_shape=\(224, 224, 3\)"),
])
def test_named_weights_errors_name_the_argument_and_what_is_allowed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pretrained.build_kwargs("mobilenet_v3_small", kwargs)


def test_a_model_without_shipped_weights_lists_the_models_that_have_them():
    with pytest.raises(ValueError, match=r"'resnet50' has no shipped weights='cifar10'; the "
                                         r"models that have are \['mobilenet_v3_small'\]"):
        kerasnets.create_model("resnet50", weights="cifar10")


def test_an_unknown_weights_name_lists_the_shipped_ones():
    with pytest.raises(ValueError, match=r"weights='cifar100', which is not a file\. Named "
                                         r"weights that ship with kerasnets: 'cifar10'"):
        kerasnets.create_model("mobilenet_v3_small", weights="cifar100")


def test_the_builder_points_named_weights_to_create_model():
    with pytest.raises(ValueError, match=r"create_model\(NAME, weights='cifar10'\)"):
        kerasnets.MobileNetV3Small(weights="cifar10", classes=10)


def test_a_damaged_file_is_refused(tmp_path, monkeypatch):
    entry = pretrained.CIFAR10["mobilenet_v3_small"]
    (tmp_path / entry.file).write_bytes(entry.path.read_bytes()[:-1])
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ValueError, match="the file is damaged"):
        pretrained.shipped_weights("mobilenet_v3_small")
