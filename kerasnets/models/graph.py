"""The layer graph of a functional Keras model: read from its config, and flattened.

``LayerGraph`` reads who feeds whom from ``model.get_config()`` (the serialized inbound nodes,
so it sees exactly what a saved model holds). ``inline_submodels`` returns a model whose nested
functional sub-models (``base(inputs)`` with ``base`` a kerasnets builder or any functional
model, as transfer learning is usually written) are replaced by their layers, so tools that
work layer by layer (QAT, per-layer profiles) see every op.
"""

from typing import Dict, Iterator, List, Optional, Tuple

import tensorflow as tf

from kerasnets._keras import keras

TensorKey = Tuple[str, int]  # (producer layer name, output index) of a tensor in the model


def _inbound_entries(node_data) -> Iterator[Tuple[str, int]]:
    """Yields ``(producer name, tensor index)`` for every tensor in serialized node data.

    A tensor is ``[layer_name, node_index, tensor_index(, kwargs)]``, nested in lists (one per
    call) or in the kwargs of layers such as ``TFOpLambda``, whose kwargs can hold tensors too.
    """
    if isinstance(node_data, dict):
        for value in node_data.values():
            yield from _inbound_entries(value)
    elif isinstance(node_data, (list, tuple)):
        if len(node_data) in (3, 4) and isinstance(node_data[0], str) and isinstance(
            node_data[1], int
        ):
            yield node_data[0], node_data[2]
            if len(node_data) == 4:
                yield from _inbound_entries(node_data[3])
        else:
            for item in node_data:
                yield from _inbound_entries(item)


class LayerGraph:
    """The layer graph of a functional model, read from its config.

    Attributes:
      names: layer names in the config's (topological) order.
      calls: ``{layer: number of times it is called}``.
      producers: ``{layer: names of the layers whose tensors it reads, over all its calls}``.
      consumers: ``{layer: names of the layers reading its tensors; None for a model output}``.
      inputs, outputs: the model's input and output tensors as ``(layer name, tensor index)``.
    """

    def __init__(self, model: keras.Model):
        config = model.get_config()
        self.names: List[str] = [layer["config"]["name"] for layer in config["layers"]]
        self.calls: Dict[str, int] = {}
        self.producers: Dict[str, List[str]] = {}
        self.consumers: Dict[str, List[Optional[str]]] = {name: [] for name in self.names}
        for layer in config["layers"]:
            name = layer["config"]["name"]
            self.calls[name] = len(layer["inbound_nodes"])
            self.producers[name] = [p for p, _ in _inbound_entries(layer["inbound_nodes"])]
            for producer in self.producers[name]:
                self.consumers[producer].append(name)
        self.inputs: List[TensorKey] = list(_inbound_entries(config["input_layers"]))
        self.outputs: List[TensorKey] = list(_inbound_entries(config["output_layers"]))
        for name, _ in self.outputs:
            self.consumers[name].append(None)

    def only_consumer(self, name: str) -> Optional[str]:
        """Returns the one layer reading ``name``'s output, or None (several, or a model output)."""
        consumers = self.consumers[name]
        return consumers[0] if len(consumers) == 1 else None


def _is_nested_model(layer) -> bool:
    return isinstance(layer, keras.Model)


def _check_inlinable(model: keras.Model, outer: keras.Model) -> None:
    if not getattr(model, "_is_graph_network", False):
        raise ValueError(
            f"layer {model.name!r} of {outer.name!r} is a nested {type(model).__name__} model "
            "whose layer graph is not known (subclassed, or a Sequential model without an "
            "Input), so it cannot be flattened into one graph. Build it as a functional model "
            "(every kerasnets builder is one), or build the backbone on your input "
            "(`input_tensor=inputs`) and put the head on its output."
        )


class _Inliner:
    """Rebuilds a model's graph with a fresh copy of every leaf layer, sub-models inlined."""

    def __init__(self, model: keras.Model):
        self.copies: Dict[int, keras.layers.Layer] = {}
        # The outer model's own names stay as they are; a sub-model layer whose name is taken
        # gets its model's name as a prefix.
        self.owners = {layer.name: id(layer) for layer in model.layers
                       if not _is_nested_model(layer)}

    def run(self, model, inputs, trainable, training):
        """Returns the flat outputs of ``model`` applied to ``inputs`` (a list of tensors)."""
        usage = model._tensor_usage_count
        tensors = {str(id(x)): [y] * usage[str(id(x))] for x, y in zip(model.inputs, inputs)}
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                if node.is_input or any(t not in tensors for t in node.flat_input_ids):
                    continue
                args, kwargs = node.map_arguments(tensors)
                outputs = self.call(model, node.layer, args, kwargs, trainable, training)
                for x_id, y in zip(node.flat_output_ids, tf.nest.flatten(outputs)):
                    tensors[x_id] = [y] * usage[x_id]
        return [tensors[str(id(x))].pop() for x in model.outputs]

    def call(self, model, layer, args, kwargs, trainable, training):
        """Returns ``layer`` (of ``model``) applied to ``args``, a sub-model inlined."""
        if _is_nested_model(layer):
            _check_inlinable(layer, model)
            kwargs = dict(kwargs)
            training = kwargs.pop("training", training)
            if kwargs or len(args) != 1:
                raise ValueError(
                    f"layer {layer.name!r} of {model.name!r}: a nested model called with "
                    f"arguments other than its inputs and `training` ({sorted(kwargs)}) cannot "
                    "be flattened into one graph; call it as `base(inputs)`."
                )
            outputs = self.run(layer, tf.nest.flatten(args[0]), trainable and layer.trainable,
                               training)
            return tf.nest.pack_sequence_as(layer._nested_outputs, outputs)
        if training is not None and layer._expects_training_arg and "training" not in kwargs:
            if not isinstance(layer, keras.layers.BatchNormalization):
                kwargs = {**kwargs, "training": training}
            elif layer.trainable and trainable and not training:
                # Keras runs a frozen BatchNormalization in inference mode whatever `training`
                # says; a trainable one under training=False trains gamma/beta on frozen
                # statistics, which a flat graph of plain layers cannot express.
                raise ValueError(
                    f"the nested model {model.name!r} is called with training=False while its "
                    f"BatchNormalization layer {layer.name!r} is trainable; the flattened graph "
                    "cannot keep a trainable BatchNormalization in inference mode. Freeze its "
                    "BatchNormalization layers (`layer.trainable = False` keeps them in "
                    "inference mode, as training=False did), freeze the whole sub-model "
                    f"(`{model.name}.trainable = False`), or call it without training=False."
                )
        first_call = id(layer) not in self.copies
        copy = self.copy(model, layer, trainable)
        outputs = copy(*args, **kwargs)
        if first_call:  # built now: it can take the original's weights
            copy.set_weights(layer.get_weights())
        return outputs

    def copy(self, model, layer, trainable):
        """Returns the one copy of ``layer`` (a shared layer stays shared)."""
        if id(layer) not in self.copies:
            config = layer.get_config()
            if self.owners.setdefault(layer.name, id(layer)) != id(layer):
                config["name"] = f"{model.name}_{layer.name}"
                self.owners[config["name"]] = id(layer)
            copy = type(layer).from_config(config)
            # Keras's rule: a layer trains only if it and every model around it are trainable.
            copy.trainable = trainable and layer.trainable
            self.copies[id(layer)] = copy
        return self.copies[id(layer)]


def inline_submodels(model: keras.Model) -> keras.Model:
    """Returns ``model`` as one functional graph, its nested functional models replaced by layers.

    ``model`` itself is returned when it has no nested model. Otherwise every layer of the new
    model is a fresh copy with the original's config and weights (the caller's model is not
    touched), so the new model computes the same outputs. A layer is trainable in the copy when
    it and every model around it are trainable (Keras's rule for nested models). A nested
    model called with ``training=`` passes it on to its layers; a frozen BatchNormalization
    runs in inference mode anyway (Keras's rule). Layer names are kept; a sub-model layer
    whose name is already taken gets the sub-model's name as a prefix.

    Args:
      model: a functional keras model (a Sequential one is a functional model with an Input).

    Raises:
      ValueError: a nested model whose graph is not known (subclassed), one called with
        arguments other than its inputs and ``training``, or a trainable BatchNormalization in
        a sub-model called with ``training=False``; the message names the working route.
    """
    if not getattr(model, "_is_graph_network", False):
        raise ValueError(f"`model` must be a functional keras model; received {model!r}")
    if not any(_is_nested_model(layer) for layer in model.layers):
        return model
    inputs = [keras.Input(batch_shape=x.shape, dtype=x.dtype, name=name)
              for x, name in zip(model.inputs, model.input_names)]
    outputs = _Inliner(model).run(model, inputs, model.trainable, None)
    return keras.Model(
        tf.nest.pack_sequence_as(model._nested_inputs, inputs),
        tf.nest.pack_sequence_as(model._nested_outputs, outputs),
        name=model.name,
    )
