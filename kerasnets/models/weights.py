"""Weight import from ``.h5`` files saved by kerasnets or by tf_keras ``keras.applications``.

kerasnets models use the layer names of their keras.applications twins, so a file of the official
ImageNet weights (full or no-top) loads by name. The file is checked against the model first, by
comparing every weighted layer's weight shapes with the file's; when they do not fit, the
``ValueError`` names each difference the shapes show (another architecture, width, number of
classes, input channels, input size, or a no-top file) with an example layer and the way out.
A file for another number of input channels can be adapted:
``load_weights(model, path, adapt_input_channels=True)``.
"""

import collections
import math

import h5py
import numpy as np

from kerasnets._keras import keras, layers

# The differences the weight shapes can show, in the order the error message gives them.
ARCHITECTURE, NO_TOP, WIDTH, INPUT_SIZE, INPUT_CHANNELS, CLASSES = (
    "architecture", "no_top", "width", "input_size", "input_channels", "classes")
_ORDER = (ARCHITECTURE, NO_TOP, WIDTH, INPUT_SIZE, INPUT_CHANNELS, CLASSES)

# One difference between the model and the file: its kind, the first layer that shows it, how
# many layers show it, and the sentence that explains it.
Difference = collections.namedtuple("Difference", "cause layer count text")


def _open(path):
    """Returns ``(h5py.File, group)``: the open file and the group holding its layers."""
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(
            f"`weights`={str(path)!r} is not a readable HDF5 (.h5) weights file: {err}"
        ) from err
    group = handle["model_weights"] if ("model_weights" in handle
                                        and "layer_names" not in handle.attrs) else handle
    if "layer_names" not in group.attrs:
        handle.close()
        raise ValueError(
            f"`weights`={str(path)!r} is an HDF5 file but not a Keras weights file "
            "(no 'layer_names'); save one with model.save_weights('x.h5') or model.save('x.h5')"
        )
    return handle, group


def _decode(raw):
    return raw.decode("utf8") if isinstance(raw, bytes) else str(raw)


def _file_layers(path):
    """Returns ``{layer_name: [weight shapes]}`` of the weighted layers of a Keras 2 ``.h5``
    weights file, in the file's order."""
    handle, group = _open(path)
    with handle:
        found = {}
        for name in map(_decode, group.attrs["layer_names"]):
            sub = group[name]
            shapes = [tuple(sub[w].shape) for w in map(_decode, sub.attrs.get("weight_names", []))]
            if shapes:
                found[name] = shapes
        return found


def _file_layer_weights(path, layer_name):
    """Returns the weight arrays of layer ``layer_name`` in the ``.h5`` file at ``path``."""
    handle, group = _open(path)
    with handle:
        sub = group[layer_name]
        return [np.asarray(sub[w]) for w in map(_decode, sub.attrs["weight_names"])]


def _flatten_input(layer):
    """Returns the ``(rows, cols, channels)`` a Dense layer's Flatten input had, else None."""
    if not isinstance(layer, layers.Dense):
        return None
    producer = layer.inbound_nodes[0].inbound_layers
    if not isinstance(producer, layers.Flatten):
        return None
    shape = producer.input_shape
    return tuple(shape[1:]) if len(shape) == 4 else None


def _layer_differences(layer, ours, theirs, first, last):
    """Returns the ``(cause, text)`` pairs that explain why a layer's weight shapes ``ours``
    (model) differ from ``theirs`` (file); ``first``: whether it is the model's first weighted
    layer, ``last``: whether it is the classifier (the last weighted layer of a model with its
    head)."""
    where = f"layer {layer.name!r} has weight shapes {ours} in the model but {theirs} in the file"
    kernel, file_kernel = ours[0], theirs[0]
    if len(ours) != len(theirs) or len(kernel) != len(file_kernel):
        return [(ARCHITECTURE, where)]
    if len(kernel) == 4 and kernel[:2] != file_kernel[:2]:
        return [(ARCHITECTURE, f"{where} (kernel {kernel[0]}x{kernel[1]} in the model, "
                               f"{file_kernel[0]}x{file_kernel[1]} in the file)")]
    causes = []
    if len(kernel) >= 2 and kernel[-2] != file_kernel[-2]:
        flat = _flatten_input(layer)
        if first and len(kernel) == 4 and not isinstance(layer, layers.DepthwiseConv2D):
            causes.append((INPUT_CHANNELS, (
                f"the first conv {layer.name!r} takes {kernel[-2]} input channel(s) in the "
                f"model but {file_kernel[-2]} in the file")))
        elif flat is not None and file_kernel[-2] % flat[-1] == 0:
            side = math.isqrt(file_kernel[-2] // flat[-1])
            file_map = (f"{side}x{side}x{flat[-1]}" if side * side * flat[-1] == file_kernel[-2]
                        else f"{file_kernel[-2]} features")
            causes.append((INPUT_SIZE, (
                f"{layer.name!r} takes the flattened {flat[0]}x{flat[1]}x{flat[2]} map "
                f"({kernel[-2]} features) in the model but a {file_map} map in the file")))
        else:
            causes.append((WIDTH, f"{where} ({kernel[-2]} input channels in the model, "
                                  f"{file_kernel[-2]} in the file)"))
    if kernel[-1] != file_kernel[-1]:
        if last and len(kernel) >= 2:
            causes.append((CLASSES, (
                f"the classifier {layer.name!r} has {kernel[-1]} outputs in the model but "
                f"{file_kernel[-1]} in the file")))
        else:
            causes.append((WIDTH, f"{where} ({kernel[-1]} channels in the model, "
                                  f"{file_kernel[-1]} in the file)"))
    return causes or [(ARCHITECTURE, where)]


_ADVICE = {
    ARCHITECTURE: "the file is of another architecture: build the model the file was saved "
                  "from (same builder and arguments such as minimalistic, blocks, se)",
    NO_TOP: "the file has no classifier (saved with include_top=False): build with "
            "include_top=False, or use a file that has the head",
    WIDTH: "the file was saved with another width: pass its width argument (alpha, "
           "depth_multiplier, growth_rate, ...)",
    INPUT_SIZE: "the file was saved with another input size, which this network's flattened "
                "head depends on: build with the file's input_shape, or include_top=False to "
                "load the backbone",
    INPUT_CHANNELS: "kerasnets can adapt the first conv's kernel: build with weights=None, then "
                    "kerasnets.models.weights.load_weights(model, path, "
                    "adapt_input_channels=True) (sums the kernel over its input channels for "
                    "1 channel, repeats and rescales it for more: timm's adapt_input_conv)",
    CLASSES: "pass the `classes` the file was trained with, or include_top=False to load the "
             "backbone",
}


def weight_differences(model, path, include_top=True):
    """Returns the list of ``Difference``s between ``model`` and the ``.h5`` weights file at
    ``path`` (empty when every weighted layer of the model is in the file with the same shapes).

    Found by comparing shapes layer by layer: a first conv that differs only in its input axis
    is another number of input channels; a last layer that differs only in its output axis,
    another number of classes; a Dense layer after a Flatten that differs in its input axis,
    another input size; other channel counts, another width; kernel sizes, weight counts or
    missing layers, another architecture; missing layers that are exactly the model's head (with
    ``include_top``), a no-top file. Raises ``ValueError`` if the file is not a weights file.
    """
    in_file = _file_layers(path)
    weighted = [(layer, [tuple(w.shape) for w in layer.weights])
                for layer in model.layers if layer.weights]
    found = collections.OrderedDict()

    def add(cause, layer_name, text):
        if cause in found:
            found[cause] = found[cause]._replace(count=found[cause].count + 1)
        else:
            found[cause] = Difference(cause, layer_name, 1, text)

    missing = [i for i, (layer, _) in enumerate(weighted) if layer.name not in in_file]
    present = len(weighted) - len(missing)
    if missing and present < len(weighted) / 2:
        model_names = [layer.name for layer, _ in weighted[:3]]
        add(ARCHITECTURE, weighted[missing[0]][0].name, (
            f"only {present} of the model's {len(weighted)} weighted layers are in the file "
            f"(model: {model_names} ...; file: {list(in_file)[:3]} ...)"))
        return [found[ARCHITECTURE]]
    if missing:
        is_head = include_top and missing == list(range(missing[0], len(weighted)))
        names = [weighted[i][0].name for i in missing]
        if is_head:
            add(NO_TOP, names[0], f"the model's head layers {names} are not in the file")
        else:
            add(ARCHITECTURE, names[0], (
                f"{len(missing)} weighted layers of the model are not in the file "
                f"(first: {names[:3]})"))
    for i, (layer, ours) in enumerate(weighted):
        theirs = in_file.get(layer.name)
        if theirs is None or theirs == ours:
            continue
        for cause, text in _layer_differences(layer, ours, theirs, i == 0,
                                              include_top and i == len(weighted) - 1):
            add(cause, layer.name, text)
    extra = [name for name in in_file if name not in {layer.name for layer, _ in weighted}]
    if found and extra and not (set(found) <= {NO_TOP, CLASSES, INPUT_SIZE}):
        # Layers only the file has, beside shapes that differ: a deeper or other network.
        add(ARCHITECTURE, extra[0], (
            f"the file has {len(extra)} weighted layers the model has not (first: {extra[:3]})"))
    return sorted(found.values(), key=lambda d: _ORDER.index(d.cause))


def _message(path, differences):
    """Returns the error text for ``differences``: one sentence per kind, with its way out."""
    parts = []
    for d in differences:
        more = f" ({d.count} layers show this)" if d.count > 1 else ""
        parts.append(f"{d.cause.replace('_', ' ')}: {d.text}{more}; {_ADVICE[d.cause]}.")
    return (f"`weights`={str(path)!r} does not fit this model. "
            + " ".join(f"[{i + 1}] {p}" for i, p in enumerate(parts)))


def check_weights_file(model, path, include_top):
    """Returns nothing; raises ``ValueError`` naming every difference (``weight_differences``)
    if the file at ``path`` does not fit ``model``."""
    differences = weight_differences(model, path, include_top)
    if differences:
        raise ValueError(_message(path, differences))


def adapt_input_conv(kernel, channels):
    """Returns a conv ``kernel`` (``(kh, kw, in, out)`` array) adapted to ``channels`` inputs.

    timm's ``adapt_input_conv``: for 1 channel the kernel is summed over its input channels (a
    gray image then gives what the RGB model gives on the image repeated 3 times); for more, it
    is repeated along the input axis, cut to ``channels`` and scaled by ``in / channels`` (so
    an input with equal channels gives the same response as before).
    """
    kernel = np.asarray(kernel)
    in_channels = kernel.shape[2]
    if channels == in_channels:
        return kernel
    if channels == 1:
        return kernel.sum(axis=2, keepdims=True)
    repeats = math.ceil(channels / in_channels)
    return np.tile(kernel, (1, 1, repeats, 1))[:, :, :channels] * (in_channels / channels)


def load_weights(model, path, include_top=True, adapt_input_channels=False):
    """Returns ``model`` with the weights of ``path`` loaded by layer name, after checking them.

    Args:
      model: a kerasnets (or keras.applications-named) model.
      path: a Keras ``.h5`` weights file.
      include_top: whether ``model`` has its classifier (for the no-top diagnosis).
      adapt_input_channels: load a file saved for another number of input channels, adapting
        the first conv's kernel with ``adapt_input_conv``.

    Raises:
      ValueError: the file is not a weights file or does not fit (see ``weight_differences``).
    """
    differences = weight_differences(model, path, include_top)
    to_adapt = [d for d in differences if d.cause == INPUT_CHANNELS]
    if adapt_input_channels:
        differences = [d for d in differences if d.cause != INPUT_CHANNELS]
    if differences:
        raise ValueError(_message(path, differences))
    if not to_adapt:
        model.load_weights(str(path), by_name=True)
        return model
    model.load_weights(str(path), by_name=True, skip_mismatch=True)
    first = model.get_layer(to_adapt[0].layer)
    file_weights = _file_layer_weights(path, first.name)
    first.set_weights([adapt_input_conv(file_weights[0], first.kernel.shape[-2])]
                      + file_weights[1:])
    return model


def finish_model(inputs, outputs, name, weights, include_top):
    """Returns the functional ``keras.Model`` of a builder, with ``weights`` loaded if given."""
    model = keras.Model(inputs, outputs, name=name)
    if weights is not None:
        load_weights(model, weights, include_top)
    return model
