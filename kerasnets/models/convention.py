"""The keras.applications calling convention, shared by every kerasnets builder.

``input_shape, include_top, weights, input_tensor, pooling, classes, classifier_activation,
dropout_rate``: arguments are validated here, at the public boundary, so that a bad value raises
a ``ValueError`` naming the argument, the value and what is allowed, never a shape error from deep
inside TensorFlow.
"""

import numbers
import os

from kerasnets._keras import backend, keras, layers
from kerasnets.models.pretrained import NAMED_WEIGHTS

POOLING_CHOICES = (None, "avg", "max")
CHANNEL_CHOICES = (1, 3)


def check_positive_number(name, value, allow_zero=False):
    """Returns ``value`` as a float after checking it is a positive (or non-negative) number."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        ok = value >= 0 if allow_zero else value > 0
    if not ok:
        allowed = "a number >= 0" if allow_zero else "a number > 0"
        raise ValueError(f"`{name}` must be {allowed}; received {name}={value!r}")
    return float(value)


def check_positive_int(name, value):
    """Returns ``value`` after checking it is a positive integer."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer; received {name}={value!r}")
    return int(value)


def check_rate(name, value):
    """Returns ``value`` as a float after checking it is a probability in ``[0, 1)``."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a number in [0, 1); received {name}={value!r}")
    return float(value)


def check_common_args(weights, include_top, pooling, classes, classifier_activation,
                      dropout_rate=0.0):
    """Validates the arguments every builder shares; returns nothing, raises ``ValueError``."""
    if weights is not None:
        if not isinstance(weights, (str, os.PathLike)):
            raise ValueError(
                "`weights` must be None (random initialization) or the path to a weights file "
                f"(.h5); received weights={weights!r}. kerasnets never downloads weights."
            )
        if not os.path.isfile(weights):
            hint = (" kerasnets never downloads weights: pass the path of a downloaded "
                    "keras.applications .h5 file.") if str(weights) == "imagenet" else ""
            if str(weights) in NAMED_WEIGHTS:
                hint = (f" The shipped weights load by model name: "
                        f"kerasnets.create_model(NAME, weights={str(weights)!r}).")
            else:
                hint += (f" Named weights that ship with kerasnets: "
                         f"{', '.join(map(repr, NAMED_WEIGHTS))} "
                         f"(kerasnets.create_model(NAME, weights={NAMED_WEIGHTS[0]!r})).")
            raise ValueError(
                f"`weights` must be None or the path to an existing weights file; received "
                f"weights={str(weights)!r}, which is not a file.{hint}"
            )
    if not isinstance(include_top, bool):
        raise ValueError(f"`include_top` must be True or False; received include_top={include_top!r}")
    if pooling not in POOLING_CHOICES:
        raise ValueError(
            f"`pooling` must be one of {POOLING_CHOICES}; received pooling={pooling!r}"
        )
    check_positive_int("classes", classes)
    try:
        keras.activations.get(classifier_activation)
    except ValueError as err:
        raise ValueError(
            "`classifier_activation` must be None or a Keras activation name or callable; "
            f"received classifier_activation={classifier_activation!r}"
        ) from err
    check_rate("dropout_rate", dropout_rate)


def model_input(input_shape, input_tensor, default_size, min_size, include_top,
                static_when_top=True):
    """Returns ``(img_input, model_inputs)`` for a builder, after validating the input shape.

    Args:
      input_shape: ``(rows, cols, channels)`` or None. ``None`` rows/cols are allowed when the
        network ends in global pooling.
      input_tensor: optional Keras tensor to build the model on.
      default_size: square size used when neither ``input_shape`` nor ``input_tensor`` is given.
        ``None`` means a dynamic ``(None, None, 3)`` input (MobileNetV3, as keras.applications).
      min_size: the smallest rows/cols the network can take.
      include_top: whether the classifier head is built.
      static_when_top: whether the head needs a static spatial size (flatten/reshape heads).
    """
    if input_tensor is not None and not backend.is_keras_tensor(input_tensor):
        raise ValueError(
            "`input_tensor` must be a Keras tensor (the output of `keras.Input` or a layer); "
            f"received input_tensor of type {type(input_tensor).__name__}"
        )
    if input_shape is None:
        if input_tensor is not None:
            input_shape = tuple(backend.int_shape(input_tensor)[1:])
        elif default_size is None:
            input_shape = (None, None, 3)
        else:
            input_shape = (default_size, default_size, 3)
    if not isinstance(input_shape, (tuple, list)):
        raise ValueError(
            "`input_shape` must be a tuple (rows, cols, channels); "
            f"received input_shape={input_shape!r}"
        )
    try:
        input_shape = tuple(None if d is None else int(d) for d in input_shape)
    except (TypeError, ValueError) as err:
        raise ValueError(
            "`input_shape` must be a tuple (rows, cols, channels); "
            f"received input_shape={input_shape!r}"
        ) from err
    if len(input_shape) != 3:
        raise ValueError(
            "`input_shape` must be a tuple (rows, cols, channels) (channels last); "
            f"received input_shape={input_shape!r}"
        )
    rows, cols, channels = input_shape
    if channels not in CHANNEL_CHOICES:
        raise ValueError(
            f"`input_shape` must have {' or '.join(map(str, CHANNEL_CHOICES))} channels (last "
            f"axis); received input_shape={input_shape!r}"
        )
    for dim in (rows, cols):
        if dim is not None and dim < min_size:
            raise ValueError(
                f"`input_shape` rows and cols must be at least {min_size} for this network; "
                f"received input_shape={input_shape!r}"
            )
        if dim is None and include_top and static_when_top:
            raise ValueError(
                "`input_shape` must have static rows and cols when include_top=True for this "
                f"network; received input_shape={input_shape!r}"
            )
    if input_tensor is not None:
        tensor_shape = tuple(backend.int_shape(input_tensor)[1:])
        if tensor_shape != input_shape:
            raise ValueError(
                f"`input_shape`={input_shape!r} does not match the shape of `input_tensor` "
                f"{tensor_shape!r}"
            )
        img_input = input_tensor
        model_inputs = keras.utils.get_source_inputs(input_tensor)
    else:
        img_input = layers.Input(shape=input_shape)
        model_inputs = img_input
    return img_input, model_inputs


def pool_features(x, pooling, name_prefix=""):
    """Returns ``x`` after the optional ``pooling`` of a headless (include_top=False) model."""
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=name_prefix + "avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=name_prefix + "max_pool")(x)
    return x


def dense_classifier(x, classes, dropout_rate, classifier_activation):
    """Returns the classifier head on pooled features: optional dropout, then a dense layer.

    Layer names are keras.applications' (``dropout``, ``predictions``), so weight files load.
    """
    if dropout_rate > 0:
        x = layers.Dropout(dropout_rate, name="dropout")(x)
    return layers.Dense(classes, activation=classifier_activation, name="predictions")(x)


def conv_classifier(x, classes, dropout_rate, classifier_activation, conv_name,
                    activation_name):
    """Returns the MobileNet V1/V3 classifier on a pooled ``(None, 1, 1, C)`` map: dropout (when
    ``dropout_rate`` > 0), a 1x1 conv to ``classes`` named ``conv_name``, flatten and the
    classifier activation named ``activation_name``: shape ``(None, classes)``.

    keras.applications reshapes to ``(classes,)``; Flatten is the same on a 1x1 map and, unlike
    Reshape with a dynamic batch, converts to an op XNNPACK takes (no SHAPE/PACK ops).
    """
    if dropout_rate > 0:
        x = layers.Dropout(dropout_rate, name="dropout")(x)
    x = layers.Conv2D(classes, 1, padding="same", name=conv_name)(x)
    x = layers.Flatten(name="flatten")(x)
    return layers.Activation(classifier_activation, name=activation_name)(x)


def fully_connected_head(x, fc_names, units, dropout_rate, dropout_first, classes,
                         classifier_activation):
    """Returns the head of VGG and AlexNet on a feature map: flatten, one ReLU dense layer of
    ``units`` per name in ``fc_names`` (each with a dropout layer ``{name}_dropout`` when
    ``dropout_rate`` > 0: before the dense layer when ``dropout_first``, as torchvision's
    AlexNet, after it otherwise, as the VGG paper), then the ``predictions`` dense layer."""
    x = layers.Flatten(name="flatten")(x)
    for fc in fc_names:
        dropout = (layers.Dropout(dropout_rate, name=fc + "_dropout") if dropout_rate > 0
                   else None)
        if dropout is not None and dropout_first:
            x = dropout(x)
        x = layers.Dense(units, activation="relu", name=fc)(x)
        if dropout is not None and not dropout_first:
            x = dropout(x)
    return layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
