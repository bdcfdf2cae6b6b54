"""The split of a multi-exit Keras model into stages, one per exit, and the MACs of each stage.

Stage k takes stage k-1's features (stage 1: the image) and returns the features that later
stages read, then its exit's output; the last stage returns its exit's output only. Run one
after another, the stages give the full model's outputs. ``kerasnets.export.stages`` converts
them to ``.tflite`` files and runs them until an exit is confident enough (the policy of
``kerasnets.export.exit_policy``): an image that leaves early never pays for the later stages.
"""

import collections
import dataclasses
from typing import List, Tuple

import tensorflow as tf

from kerasnets._keras import keras
from kerasnets.models.graph import LayerGraph, TensorKey
from kerasnets.models.profiler import layer_macs


@dataclasses.dataclass(frozen=True)
class Stage:
    """Stage ``index`` (0-based) of a multi-exit model.

    ``model`` takes the features ``input_names`` (for stage 0, the image) and returns the
    features ``feature_names`` that later stages read, then its exit's output; the last stage
    returns its exit's output only. Names are ``"{producer layer}:{output index}"`` of the
    tensors in the full model. ``layer_names`` are the full model's layers the stage runs;
    the stage models share their layers (and weights) with the full model.
    """

    index: int
    model: keras.Model
    input_names: Tuple[str, ...]
    feature_names: Tuple[str, ...]
    layer_names: Tuple[str, ...]


def _model_call(layer):
    """Returns the ``Node`` of ``layer``'s first call, the one its model was built from (stage
    models call the same layers again)."""
    return layer.inbound_nodes[0]


def _key_of(tensor) -> TensorKey:
    """Returns the ``TensorKey`` of a Keras tensor of the full model."""
    history = tensor._keras_history
    return history.layer.name, history.tensor_index


def _graph(model):
    """Returns ``(LayerGraph, {layer: keys of the tensors its call reads})`` of a functional
    model whose layers are each called once."""
    if not isinstance(model, keras.Model) or not getattr(model, "_is_graph_network", False):
        raise ValueError(
            "`model` must be a functional keras model (a multi-exit kerasnets builder's); "
            f"received {type(model).__name__}"
        )
    graph = LayerGraph(model)
    for name in graph.names:
        if graph.calls[name] > 1:
            raise ValueError(
                f"layer {name!r} of {model.name!r} is called {graph.calls[name]} times; "
                "split_stages needs every layer called once"
            )
    inbound = {name: [_key_of(t) for t in _model_call(model.get_layer(name)).keras_inputs]
               for name in graph.names}
    return graph, inbound


def _first_exit_stages(graph, inbound):
    """Returns ``{layer name: k}``: the first exit k whose output depends on the layer (layers
    that no exit needs are left out)."""
    stage_of = {}
    for k, (out_name, _) in enumerate(graph.outputs):
        if out_name in stage_of:
            raise ValueError(
                f"exit {k + 1} ({out_name!r}) is computed on the way to exit "
                f"{stage_of[out_name] + 1}: the model's outputs must be its exits in order"
            )
        stack = [out_name]
        while stack:
            name = stack.pop()
            if name in stage_of:
                continue
            stage_of[name] = k
            stack.extend(p for p, _ in inbound[name])
    return stage_of


def _pull_forward(graph, inbound, stage_of):
    """Moves, in ``stage_of``, every layer that reads a tensor made two stages or more before
    its own to the stage right after that tensor's, with the inputs it needs from later stages;
    raises ``ValueError`` where an exit itself would have to move."""
    exit_layers = {name: k for k, (name, _) in enumerate(graph.outputs)}

    def move(name, stage):
        stack = [name]
        while stack:
            layer = stack.pop()
            if stage_of[layer] <= stage:
                continue
            if layer in exit_layers:
                raise ValueError(
                    f"exit {exit_layers[layer] + 1} ({layer!r}) reads a tensor of stage "
                    f"{stage}: the model cannot be split into one stage per exit"
                )
            stage_of[layer] = stage
            stack.extend(p for p, _ in inbound[layer])

    moved = True
    while moved:
        moved = False
        for name in graph.names:
            if name not in stage_of:
                continue
            late = [p for p, _ in inbound[name] if stage_of[name] > stage_of[p] + 1]
            if late:
                move(name, min(stage_of[p] for p in late) + 1)
                moved = True


def _stage_of_layers(graph, inbound):
    """Returns ``{layer name: stage}``: the first exit whose output depends on the layer, moved
    earlier where needed so that no stage passes on a tensor it neither computes nor uses.

    Assigning each layer to the first exit that needs it computes as little as possible before
    each exit (MSDNet's exit k only needs the coarsest scale). But then a tensor made in stage i
    may be read first in stage j > i + 1 (MSDNet: a fine-scale map that only a later layer reads),
    and stages i + 1 .. j - 1 would have to carry it. Its readers (with their own inputs) move to
    stage i + 1 instead, until no such tensor is left.
    """
    stage_of = _first_exit_stages(graph, inbound)
    _pull_forward(graph, inbound, stage_of)
    return stage_of


def _carried_features(graph, inbound, stage_of):
    """Returns, per stage k, the tensor keys computed in stages <= k and read by stages > k, in
    layer order: what stage k passes on (nothing for the last stage)."""
    order = {name: i for i, name in enumerate(graph.names)}
    consumers = collections.defaultdict(set)  # tensor key -> stages reading it
    for name, keys in inbound.items():
        if name in stage_of:
            for key in keys:
                consumers[key].add(stage_of[name])
    return [sorted((key for key, stages in consumers.items()
                    if stage_of[key[0]] <= k and max(stages) > k),
                   key=lambda key: (order[key[0]], key[1]))
            for k in range(len(graph.outputs))]


def _key_name(key):
    return f"{key[0]}:{key[1]}"


def _call_in_stage(layer, tensors):
    """Returns the outputs of ``layer`` called as in its model (same arguments), with each of
    the model's tensors replaced by the stage's tensor of the same key in ``tensors``."""
    node = _model_call(layer)
    args, kwargs = tf.nest.map_structure(
        lambda v: tensors[_key_of(v)] if keras.backend.is_keras_tensor(v) else v,
        (node.call_args, node.call_kwargs))
    return layer(*args, **kwargs)


def _build_stage(model, graph, stage_of, k, in_keys, feature_keys):
    """Returns stage ``k``: a model from new inputs for the tensors ``in_keys`` through the full
    model's own layers of stage k to the tensors ``feature_keys`` and exit k's output."""
    tensors = {}
    for i, (name, index) in enumerate(in_keys):
        tensor = tf.nest.flatten(_model_call(model.get_layer(name)).outputs)[index]
        shape = keras.backend.int_shape(tensor)
        tensors[(name, index)] = keras.Input(shape=shape[1:], name=f"stage{k + 1}_input{i + 1}")
    stage_inputs = [tensors[key] for key in in_keys]
    stage_layers = [name for name in graph.names if stage_of.get(name) == k
                    and not isinstance(model.get_layer(name), keras.layers.InputLayer)]
    for name in stage_layers:
        result = _call_in_stage(model.get_layer(name), tensors)
        for index, tensor in enumerate(tf.nest.flatten(result)):
            tensors[(name, index)] = tensor
    stage_outputs = [tensors[key] for key in feature_keys] + [tensors[graph.outputs[k]]]
    stage_model = keras.Model(stage_inputs, stage_outputs, name=f"{model.name}_stage{k + 1}")
    return Stage(k, stage_model, tuple(map(_key_name, in_keys)),
                 tuple(map(_key_name, feature_keys)), tuple(stage_layers))


def split_stages(model: keras.Model) -> List[Stage]:
    """Returns the ``Stage`` list of a multi-exit functional model (one stage per exit).

    A layer belongs to the stage of the first exit that needs it; a stage passes on the tensors
    that later stages read (for MSDNet, the maps of every scale still in use). Stage models are
    new functional models calling the full model's own layers, so they always hold its current
    weights; they work the same on a QAT model from ``kerasnets.quantization.qat.quantize_model``.

    Raises:
      ValueError: not a functional model, a layer called more than once, a model with fewer
        than two outputs, outputs not in exit order, or an exit that reads a tensor of an
        earlier stage than its own stage's inputs.
    """
    graph, inbound = _graph(model)
    if len(graph.outputs) < 2:
        raise ValueError(
            f"`model` must have one output per exit (at least 2); {model.name!r} has "
            f"{len(graph.outputs)}"
        )
    stage_of = _stage_of_layers(graph, inbound)
    carried = _carried_features(graph, inbound, stage_of)
    return [_build_stage(model, graph, stage_of, k, graph.inputs if k == 0 else carried[k - 1],
                         carried[k])
            for k in range(len(graph.outputs))]


def stage_macs(model: keras.Model) -> List[int]:
    """Returns the conv/dense MACs of each stage of a float multi-exit model (its layers and its
    exit; ``kerasnets.models.profiler`` counting), one int per exit.

    Raises:
      ValueError: a model ``split_stages`` rejects for its graph (not functional, a layer called
        more than once, outputs not in exit order).
    """
    graph, inbound = _graph(model)
    macs = [0] * len(graph.outputs)
    for name, k in _stage_of_layers(graph, inbound).items():
        macs[k] += int(layer_macs(model.get_layer(name)))
    return macs
