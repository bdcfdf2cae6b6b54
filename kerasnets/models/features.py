"""Multi-scale feature extraction for every registered model (timm's ``features_only``).

``create_model(name, features_only=True, out_strides=(4, 8, 16, 32))`` returns a model whose
outputs are the backbone's feature maps at those output strides, for detection and
segmentation heads (FPN, DeepLab, ...). The maps are found in the functional graph, so every
family is served by the same rule: the feature map at stride ``s`` is the output of the last
layer whose output is ``s`` times smaller than the input and through which every path from the
input to the output passes, i.e. the end of the stage that runs at that resolution. A layer
inside a residual block or an Inception module is bypassed by a parallel branch, so it is never
chosen; zero padding layers (a border added for the next strided conv) are not feature maps.

What that gives: ResNet/ResNeXt ``conv{2..5}_block{n}_out``, Xception the outputs of blocks
2, 3 and 12 (the end of the middle flow) and of the exit flow, GoogLeNet ``conv2/3x3`` and
inception 3b, 4e, 5b, DenseNet the transition convs before their average pools; MobileNetV2/V3/V4
networks downsample inside a block that has no shortcut, so their map is the expansion of that
block, taken before the strided depthwise conv (the layers TensorFlow's image segmentation
tutorial takes from MobileNetV2).
"""

import inspect
import math
import numbers

import tensorflow as tf

from kerasnets._keras import keras, layers

DEFAULT_STRIDES = (4, 8, 16, 32)


def layer_strides(model):
    """Returns ``{layer name: output stride}`` for the layers of ``model`` with one 4D output.

    The stride is the input rows over the output rows, rounded to the nearest power of two
    ('valid' convolutions, as in Xception's stem, make the sizes slightly smaller than the
    exact input/stride).
    """
    rows = model.input_shape[1]
    if rows is None:
        raise ValueError(
            "layer_strides() needs a model built with static input rows; received input shape "
            f"{model.input_shape}"
        )
    strides = {}
    for layer in model.layers:
        shape = layer.output_shape
        if not isinstance(shape, tuple) or len(shape) != 4 or not shape[1]:
            continue
        strides[layer.name] = 2 ** round(math.log2(rows / shape[1]))
    return strides


def articulation_layers(model):
    """Returns the names of the layers of ``model`` that every path from its inputs to its
    outputs passes through.

    ``model.layers`` is in topological order, so a layer is on every path exactly when no
    connection jumps over its position (from a layer before it to a layer after it).
    """
    position = {id(layer): i for i, layer in enumerate(model.layers)}
    furthest = list(range(len(model.layers)))  # furthest consumer of each layer
    for j, layer in enumerate(model.layers):
        for node in layer.inbound_nodes:
            for producer in tf.nest.flatten(node.inbound_layers):
                i = position.get(id(producer))
                if i is not None:
                    furthest[i] = max(furthest[i], j)
    names = []
    reach = 0  # furthest position reached by a connection from an earlier layer
    for i, layer in enumerate(model.layers):
        if reach <= i:
            names.append(layer.name)
        reach = max(reach, furthest[i])
    return names


def stage_ends(model):
    """Returns ``{stride: name of the layer ending the stage at that stride}`` for ``model``
    (strides >= 2; see the module docstring)."""
    strides = layer_strides(model)
    ends = {}
    for name in articulation_layers(model):
        layer = model.get_layer(name)
        if name in strides and strides[name] >= 2 and not isinstance(
                layer, layers.ZeroPadding2D):
            ends[strides[name]] = name  # in topological order: the last one wins
    return ends


def _check_out_strides(out_strides):
    """Returns ``out_strides`` as a tuple of ints after checking it is a non-empty sequence of
    distinct positive integers."""
    ok = isinstance(out_strides, (tuple, list)) and len(out_strides) > 0 and all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0
        for s in out_strides)
    if not ok or len(set(out_strides)) != len(out_strides):
        raise ValueError(
            "`out_strides` must be a non-empty tuple of distinct positive integers such as "
            f"{DEFAULT_STRIDES}; received out_strides={out_strides!r}"
        )
    return tuple(int(s) for s in out_strides)


def feature_model(entry, out_strides=DEFAULT_STRIDES, **kwargs):
    """Returns a ``keras.Model`` of the registry ``entry``'s backbone whose outputs are the
    feature maps at ``out_strides``, in that order.

    ``kwargs`` are the builder's (``input_shape``, ``alpha``, ``weights``, ...), except
    ``include_top`` and ``pooling``, which the feature model fixes (no head, no pooling). With
    dynamic rows/cols (``input_shape=(None, None, 3)``, or MobileNetV3's default) the maps are
    located on a model of the entry's default size and taken by layer name from the requested one.
    """
    out_strides = _check_out_strides(out_strides)
    if "include_top" not in inspect.signature(entry.builder).parameters:
        raise ValueError(
            f"features_only=True needs a backbone with an `include_top` argument; {entry.name!r} "
            f"(family {entry.family!r}) has its classifiers inside the network (one per exit). "
            "Take the features of its backbone model instead."
        )
    for arg, fixed in (("include_top", False), ("pooling", None)):
        if arg in kwargs and kwargs[arg] != fixed:
            raise ValueError(
                f"features_only=True builds the backbone without head or pooling: `{arg}` must "
                f"be {fixed!r} (or left out); received {arg}={kwargs[arg]!r}"
            )
    kwargs.update(include_top=False, pooling=None)
    model = entry.build(**kwargs)
    probe = model
    if model.input_shape[1] is None or model.input_shape[2] is None:
        size = entry.default_size
        probe_kwargs = {k: v for k, v in kwargs.items() if k not in ("input_tensor", "weights")}
        probe_kwargs["input_shape"] = (size, size, model.input_shape[-1])
        probe = entry.build(**probe_kwargs)
    ends = stage_ends(probe)
    missing = [s for s in out_strides if s not in ends]
    if missing:
        raise ValueError(
            f"`out_strides` must be strides that model {entry.name!r} has; received "
            f"out_strides={out_strides!r}, but it has no feature map at stride "
            f"{', '.join(map(str, missing))}. Allowed strides: {tuple(sorted(ends))}"
        )
    outputs = [model.get_layer(ends[s]).output for s in out_strides]
    return keras.Model(model.inputs, outputs, name=model.name + "_features")
