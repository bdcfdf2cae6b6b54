"""Weight import from ``.h5`` files saved by kerasnets or by tf_keras ``keras.applications``.

kerasnets models use the layer names of their keras.applications twins, so a file of the official
ImageNet weights (full or no-top) loads by name. The file is checked against the model first:
every weighted layer of the model must be in the file with the same weight shapes, otherwise a
``ValueError`` says which layer differs and what that means (another architecture, another
``alpha``, another number of ``classes``).
"""

import h5py

from kerasnets._keras import keras


def _file_layers(path):
    """Returns ``{layer_name: [weight shapes]}`` read from a Keras 2 ``.h5`` weights file."""
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(
            f"`weights`={str(path)!r} is not a readable HDF5 (.h5) weights file: {err}"
        ) from err
    with handle as f:
        group = f["model_weights"] if "model_weights" in f and "layer_names" not in f.attrs else f
        if "layer_names" not in group.attrs:
            raise ValueError(
                f"`weights`={str(path)!r} is an HDF5 file but not a Keras weights file "
                "(no 'layer_names'); save one with model.save_weights('x.h5') or model.save('x.h5')"
            )
        layers = {}
        for raw in group.attrs["layer_names"]:
            name = raw.decode("utf8") if isinstance(raw, bytes) else str(raw)
            sub = group[name]
            weight_names = [w.decode("utf8") if isinstance(w, bytes) else str(w)
                            for w in sub.attrs.get("weight_names", [])]
            shapes = [tuple(sub[w].shape) for w in weight_names]
            if shapes:
                layers[name] = shapes
        return layers


def check_weights_file(model, path, include_top):
    """Returns nothing; raises ``ValueError`` if the file at ``path`` does not fit ``model``."""
    in_file = _file_layers(path)
    mismatched = []
    missing = []
    for layer in model.layers:
        shapes = [tuple(w.shape) for w in layer.weights]
        if not shapes:
            continue
        if layer.name not in in_file:
            missing.append(layer.name)
        elif in_file[layer.name] != shapes:
            mismatched.append((layer.name, shapes, in_file[layer.name]))
    if mismatched:
        name, ours, theirs = mismatched[0]
        if _is_head(model, name):
            raise ValueError(
                f"`classes` does not match the head of `weights`={str(path)!r}: layer {name!r} "
                f"has weight shapes {ours} in the model but {theirs} in the file. Pass the "
                "`classes` the file was trained with, or include_top=False to load the backbone."
            )
        raise ValueError(
            f"`weights`={str(path)!r} is for another architecture or width: layer {name!r} has "
            f"weight shapes {ours} in the model but {theirs} in the file "
            f"({len(mismatched)} layers differ). Build the model with the same arguments "
            "(alpha, depth_multiplier, minimalistic, blocks, ...) as the file's."
        )
    if missing:
        raise ValueError(
            f"`weights`={str(path)!r} does not fit this model: {len(missing)} weighted layers are "
            f"not in the file (first: {missing[:3]}). The file is for another architecture"
            + (", or it is a no-top file and include_top=True" if include_top else "")
            + "."
        )


def _is_head(model, layer_name):
    """Returns whether ``layer_name`` is the model's last weighted layer (its classifier)."""
    weighted = [layer.name for layer in model.layers if layer.weights]
    return bool(weighted) and weighted[-1] == layer_name


def load_weights(model, path, include_top):
    """Returns ``model`` with the weights of ``path`` loaded by layer name, after checking them."""
    check_weights_file(model, path, include_top)
    model.load_weights(str(path), by_name=True)
    return model


def finish_model(inputs, outputs, name, weights, include_top):
    """Returns the functional ``keras.Model`` of a builder, with ``weights`` loaded if given."""
    model = keras.Model(inputs, outputs, name=name)
    if weights is not None:
        load_weights(model, weights, include_top)
    return model
