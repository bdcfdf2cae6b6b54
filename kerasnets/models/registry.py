"""The model registry: snake_case names -> builders, ``list_models()`` and ``create_model()``.

Each entry records what tests and tools need to handle every model alike: the builder and the
keyword arguments it is called with, the keras.applications twin (if any), the input size the
architecture is defined for, and the smallest input it takes.
"""

import dataclasses
import difflib
import fnmatch
from typing import Callable, Optional

from kerasnets.models import pretrained
from kerasnets.models.features import DEFAULT_STRIDES, feature_model

_REGISTRY = {}


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A registered model: ``builder(**fixed_kwargs, **user_kwargs)`` builds it."""

    name: str
    builder: Callable
    fixed_kwargs: dict
    family: str
    default_size: int
    min_size: int
    keras_twin: Optional[str] = None
    keras_twin_kwargs: Optional[dict] = None

    def build(self, **kwargs):
        """Returns a new model of this entry, with ``kwargs`` added to its fixed arguments."""
        clash = sorted(set(kwargs) & set(self.fixed_kwargs))
        if clash:
            raise ValueError(
                f"create_model({self.name!r}): argument(s) {clash} are fixed by this registry "
                f"entry ({ {k: self.fixed_kwargs[k] for k in clash} }); use the builder "
                f"{self.builder.__name__}() to change them"
            )
        return self.builder(**self.fixed_kwargs, **kwargs)


def register_model(name, builder, *, family, default_size, min_size, keras_twin=None,
                   keras_twin_kwargs=None, **fixed_kwargs):
    """Returns the new ``ModelEntry`` after adding it to the registry under ``name``."""
    if name in _REGISTRY:
        raise ValueError(f"model name {name!r} is already registered")
    entry = ModelEntry(name, builder, dict(fixed_kwargs), family, default_size, min_size,
                       keras_twin, dict(keras_twin_kwargs or fixed_kwargs) if keras_twin else None)
    _REGISTRY[name] = entry
    return entry


def list_models(pattern="*"):
    """Returns the sorted registered model names matching the glob ``pattern``."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_entry(name):
    """Returns the ``ModelEntry`` of ``name``; an unknown name raises ``ValueError`` with the
    closest registered names."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Unknown model name {name!r}.{hint} kerasnets.list_models() lists all "
            f"{len(_REGISTRY)} names."
        )
    return _REGISTRY[name]


def create_model(name, features_only=False, out_strides=DEFAULT_STRIDES, **kwargs):
    """Returns a new Keras model of the registered ``name``, built with ``kwargs``.

    ``kwargs`` follow the keras.applications convention (``input_shape``, ``classes``,
    ``weights``, ``include_top``, ...). ``weights="cifar10"`` loads the weights that ship with
    kerasnets (``kerasnets.models.pretrained``; MobileNetV3-Small) and builds the input shape and
    classes they need; any other non-path value raises ``ValueError``, nothing is downloaded.
    With ``features_only=True`` the model is the backbone whose outputs are its feature maps at the output strides ``out_strides``
    (``kerasnets.models.features.feature_model``), for detection and segmentation heads.
    """
    entry = get_entry(name)
    if isinstance(kwargs.get("weights"), str) and kwargs["weights"] in pretrained.NAMED_WEIGHTS:
        kwargs = pretrained.build_kwargs(name, kwargs)
    if not isinstance(features_only, bool):
        raise ValueError(
            f"`features_only` must be True or False; received features_only={features_only!r}"
        )
    if features_only:
        return feature_model(entry, out_strides, **kwargs)
    if not isinstance(out_strides, (tuple, list)) or tuple(out_strides) != DEFAULT_STRIDES:
        raise ValueError(
            "`out_strides` chooses the feature maps of features_only=True; received "
            f"out_strides={out_strides!r} with features_only=False"
        )
    return entry.build(**kwargs)
