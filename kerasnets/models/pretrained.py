"""Weights that ship inside kerasnets, loaded by name: ``create_model(name, weights="cifar10")``.

``"cifar10"`` is the only named weight set. Each entry records the file (in
``kerasnets/data/weights/``), its sha256, the build arguments the weights need (input shape,
classes) and the class of each output; ``kerasnets/data/README.md`` gives the exact
``kerasnets train`` command that made each file and the accuracy it reached. Nothing is ever
downloaded.
"""

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Dict, Tuple

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "data" / "weights"
NAMED_WEIGHTS = ("cifar10",)


@dataclasses.dataclass(frozen=True)
class ShippedWeights:
    """One shipped weight file.

    Attributes:
      file: file name in ``WEIGHTS_DIR`` (a Keras ``.h5`` weights file).
      sha256: hex digest of the file.
      build: keyword arguments the model must be built with (``input_shape``, ``classes``).
      class_names: the class of each output index.
    """

    file: str
    sha256: str
    build: Dict[str, Any]
    class_names: Tuple[str, ...]

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / self.file


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")

# model name -> its "cifar10" weights.
CIFAR10 = {
    "mobilenet_v3_small": ShippedWeights(
        "mobilenet_v3_small_cifar10.h5",
        "ac8acb8ecccaede0b71fc741f5e67835c3970a3a5918d398cfec854733aee68a",
        {"input_shape": (64, 64, 3), "classes": 10}, CIFAR10_CLASSES),
}


def shipped_weights(model: str, name: str = "cifar10") -> ShippedWeights:
    """Returns the ``ShippedWeights`` of ``model`` named ``name``, after checking the file.

    Raises:
      ValueError: ``name`` is not a named weight set (``NAMED_WEIGHTS``), ``model`` has no
        shipped weights of that name (the message lists the models that have), or the file is
        missing or its sha256 differs from the recorded one.
    """
    if name not in NAMED_WEIGHTS:
        raise ValueError(f"`weights`={name!r} is not a named weight set; the named weights are "
                         f"{list(NAMED_WEIGHTS)} (or pass None, or the path of an .h5 file). "
                         "kerasnets never downloads weights.")
    if model not in CIFAR10:
        raise ValueError(f"model {model!r} has no shipped weights={name!r}; the models that have "
                         f"are {sorted(CIFAR10)}")
    entry = CIFAR10[model]
    if not entry.path.is_file():
        raise ValueError(f"the shipped weights {entry.path} are missing from this kerasnets "
                         "installation")
    digest = hashlib.sha256(entry.path.read_bytes()).hexdigest()
    if digest != entry.sha256:
        raise ValueError(f"the shipped weights {entry.path} have sha256 {digest}, not the "
                         f"recorded {entry.sha256}: the file is damaged")
    return entry


def build_kwargs(model: str, kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Returns ``kwargs`` of ``create_model(model, weights=NAME, **kwargs)`` with ``weights``
    replaced by the shipped file's path and the build arguments the file needs filled in.

    Raises ``ValueError`` as ``shipped_weights``, or when ``kwargs`` set a build argument to
    another value than the weights need (e.g. ``classes=1000``).
    """
    entry = shipped_weights(model, kwargs["weights"])
    out = dict(kwargs, weights=str(entry.path))
    for key, value in entry.build.items():
        given = out.get(key, value)
        if (tuple(given) if isinstance(given, (list, tuple)) else given) != value:
            raise ValueError(f"weights={kwargs['weights']!r} of {model!r} need {key}={value!r}; "
                             f"received {key}={given!r}")
        out[key] = value
    return out
