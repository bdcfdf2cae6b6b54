"""Quantization-aware training (QAT) for kerasnets models and models made of kerasnets layers.

``quantize_model`` is a drop-in for ``tfmot.quantization.keras.quantize_model``. It keeps
tfmot's default 8-bit scheme (so Conv-BatchNorm-ReLU folding and per-channel weights stay as
tfmot does them) and annotates only the layers tfmot has no rule for:

- kerasnets ``HardSwish``/``HardSigmoid`` and Keras ``Multiply`` (squeeze-and-excite) and
  ``Rescaling`` (input preprocessing): the output is quantized, as TFLite quantizes the op's
  output tensor;
- ``BatchNormalization`` that does not follow a convolution (DenseNet's pre-activation BN after
  ``Concatenate`` or pooling): the output is quantized, or, when a ReLU follows, only after
  the ReLU (TFLite fuses the ReLU into the BN's ``ADD``);
- ``StochasticDepth``: nothing is quantized (the identity at inference);
- ``AveragePooling2D``: nothing is quantized, unlike tfmot's default: TFLite's int8 average
  pool keeps its input's quantization, and a second range after it made the converter put a
  float ``DEQUANTIZE``/``QUANTIZE`` round trip into DenseNet transitions.

The QAT model is the same for both int8 forms of hard-swish: the converter fuses a quantized
``HardSwish`` into ``HARD_SWISH``, and ``kerasnets.export.int8_forms.postprocess_tflite`` chooses the
form of the exported graph (one XNNPACK partition by default).

Where tfmot falls short of how transfer learning is written, ``quantize_model`` fills the gap:
a nested functional sub-model (``base(inputs)``) is flattened into one graph
(``kerasnets.models.graph.inline_submodels``); a layer frozen in the float model stays frozen
(tfmot kept training its kernel); and the QAT model loads back from ``.keras`` as well as from
``.h5`` and SavedModel (tfmot's ``QuantizeLayer`` did not). Both fixes live in the subclasses
``QuantizeWrapperV2`` and ``QuantizeLayer`` that every QAT model here is made of.
"""

import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.quantization.keras import (
    quantize_layer as _quantize_layer,
)

from kerasnets._keras import keras
from kerasnets.layers import HardSigmoid, HardSwish, StochasticDepth, custom_objects
from kerasnets.models.graph import LayerGraph, inline_submodels

_tfq = tfmot.quantization.keras

# The activations tfmot's QuantizeAwareActivation knows how to quantize (tfmot 0.8).
_QUANTIZABLE_ACTIVATIONS = frozenset(
    {"linear", "relu", "relu6", "swish", "gelu", "softmax", "sigmoid", "tanh"}
)
_RELU_ACTIVATIONS = frozenset({"relu", "relu6"})
# Layers whose following BatchNormalization tfmot folds in (default_8bit_transforms patterns;
# SeparableConv2D is first split into DepthwiseConv2D + Conv2D).
_FOLDING_CLASSES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense")
# Layers tfmot's default scheme quantizes through a graph transform, not its registry.
_TRANSFORMED_CLASSES = ("SeparableConv2D",)
# The BatchNormalization classes tfmot's folding patterns name.
_BN_CLASSES = ("BatchNormalization", "SyncBatchNormalization")


def _activation_quantizer():
    # tfmot's default 8-bit activation quantizer (Default8BitOutputQuantizeConfig uses it).
    return _tfq.quantizers.MovingAverageQuantizer(
        num_bits=8, per_axis=False, symmetric=False, narrow_range=False
    )


class OutputQuantizeConfig(_tfq.QuantizeConfig):
    """QuantizeConfig that quantizes a layer's output (8-bit asymmetric, moving-average range).

    The same quantizer tfmot's default 8-bit scheme puts on outputs. ``quantize_output`` is an
    attribute because tfmot's Concatenate transform switches it off on layers feeding a
    concatenation (TFLite quantizes the concatenation's output only).
    """

    def __init__(self, quantize_output=True):
        self.quantize_output = quantize_output

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [_activation_quantizer()] if self.quantize_output else []

    def get_config(self):
        return {"quantize_output": self.quantize_output}


class NoOpQuantizeConfig(OutputQuantizeConfig):
    """QuantizeConfig that quantizes nothing: for the identity at inference, or a fused producer."""

    def __init__(self):
        super().__init__(quantize_output=False)

    def get_config(self):
        return {}


@keras.utils.register_keras_serializable(package="kerasnets")
class QuantizeWrapperV2(_tfq.QuantizeWrapperV2):
    """tfmot's ``QuantizeWrapperV2`` whose weights follow ``trainable`` and load from ``.keras``.

    tfmot's wrapper lists the wrapped layer's quantized weights (kernel, depthwise kernel) as
    trainable whatever the layer's ``trainable`` says, so a frozen layer kept training under
    QAT. Here a frozen wrapper has no trainable weights, as every Keras layer. Its range
    variables are not trained by the optimizer in any case: tfmot's 8-bit quantizers set them
    in training mode (weights: their last min/max; activations: a moving average of the batch
    min/max), in frozen layers too, since the int8 model needs every layer's ranges.

    tfmot also collects the wrapped layer's weights before building it, which ``.keras``
    loading (``build_from_config``) does: the list came out shorter than the one saved.
    """

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        super().build(input_shape)

    @property
    def trainable_weights(self):
        return super().trainable_weights if self.trainable else []

    @property
    def non_trainable_weights(self):
        if self.trainable:
            return super().non_trainable_weights
        # The order of the trainable case, so saved weights load whatever `trainable` says.
        return self._dedup_weights(
            self._trainable_weights + self.layer.weights + self._non_trainable_weights
        )


@keras.utils.register_keras_serializable(package="kerasnets")
class QuantizeLayer(_quantize_layer.QuantizeLayer):
    """tfmot's ``QuantizeLayer`` (the input quantizer) that marks itself built.

    tfmot's ``build`` does not, so ``.keras`` loading built it twice (once from its build
    config, once when the graph was rebuilt) and then found 5 variables for the 3 saved.
    """

    def build(self, input_shape):
        super().build(input_shape)
        self.built = True


# The tfmot classes quantize_apply builds, and the kerasnets subclasses that fix them.
_FIXED_CLASSES = {cls.__base__: cls for cls in (QuantizeWrapperV2, QuantizeLayer)}


def _with_fixed_classes(qat_model):
    """Returns ``qat_model`` with its tfmot wrappers and input quantizer in the kerasnets classes.

    The subclasses add behaviour, not state, and the layers are built already (by tfmot, the
    wrapped layer first), so each layer takes its subclass as it is: no copy, the variables
    keep tfmot's names. Rebuilding the model from its config instead cost a third more CPU
    time than quantize_apply itself (DenseNet-121: 7.5 s on top of 21 s).
    """
    for layer in qat_model.layers:
        if type(layer) in _FIXED_CLASSES:
            layer.__class__ = _FIXED_CLASSES[type(layer)]
    return qat_model


def _quantize_objects():
    return {
        **custom_objects(),
        "OutputQuantizeConfig": OutputQuantizeConfig,
        "NoOpQuantizeConfig": NoOpQuantizeConfig,
    }


def quantize_scope(*args):
    """Returns a scope in which saved kerasnets QAT models load (``keras.models.load_model``).

    Includes tfmot's quantization objects, the kerasnets layers and the kerasnets
    QuantizeConfigs; ``args`` are further ``{name: class}`` dicts, as in tfmot's
    ``quantize_scope``. ``.h5``, SavedModel and ``.keras`` files all load in it, files written
    by tfmot's own ``quantize_model`` too: their ``QuantizeWrapperV2`` and ``QuantizeLayer``
    load as the kerasnets subclasses (frozen layers stay frozen, ``.keras`` loads).
    """
    tfmot_objects = _tfq.quantize_scope().custom_objects
    # Later dicts win: the kerasnets subclasses take the names of the tfmot classes.
    fixed = {base.__name__: cls for base, cls in _FIXED_CLASSES.items()}
    return keras.utils.custom_object_scope(*tfmot_objects, _quantize_objects(), fixed, *args)


def _as_functional(model):
    """Returns ``model`` as a functional model (a Sequential is wrapped); ValueError if neither."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"`model` must be a keras model; received {type(model).__name__} {model!r}"
        )
    if isinstance(model, keras.Sequential):
        if not model.built or not model.inputs:
            raise ValueError(
                f"`model` must be built with known inputs; received the unbuilt Sequential model "
                f"{model.name!r}. Start it with keras.Input(shape)."
            )
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    if not model._is_graph_network:
        raise ValueError(
            f"`model` must be a functional or Sequential keras model; received the subclassed "
            f"model {model.name!r} ({type(model).__name__}), whose layer graph is not known."
        )
    try:
        return inline_submodels(model)
    except ValueError as error:
        raise ValueError(f"quantize_model: {error}") from None


def _activation_name(activation):
    return getattr(activation, "__name__", type(activation).__name__)


def _is_relu(layer):
    if isinstance(layer, keras.layers.ReLU):
        return True
    return isinstance(layer, keras.layers.Activation) and (
        _activation_name(layer.activation) in _RELU_ACTIVATIONS
    )


def _is_folded_batch_norm(model, graph, layer):
    """Returns True if tfmot folds this BatchNormalization into the convolution before it."""
    producers = graph.producers[layer.name]
    if type(layer).__name__ not in _BN_CLASSES or graph.calls[layer.name] != 1 or len(
        producers
    ) != 1:
        return False
    conv = model.get_layer(producers[0])
    return (
        type(conv).__name__ in _FOLDING_CLASSES
        and _activation_name(conv.activation) == "linear"
        and graph.calls[conv.name] == 1
        and graph.consumers[conv.name] == [layer.name]
    )


def _unsupported(layer, reason):
    return ValueError(
        f"quantize_model: layer {layer.name!r} of type {type(layer).__name__} {reason}. Use "
        "an equivalent supported layer (kerasnets.layers, or a keras layer tfmot quantizes), or "
        "pass `quantize_configs={"
        f"{layer.name!r}: <tfmot.quantization.keras.QuantizeConfig>"
        "}` to quantize it yourself."
    )


def _copy_config(config):
    # One instance per layer: tfmot's Concatenate transform mutates the configs it touches.
    return type(config).from_config(config.get_config())


def _quantize_config(model, graph, layer, registry, quantize_configs):
    """Returns the QuantizeConfig for ``layer``, or None for tfmot's default one."""
    for key in (layer.name, type(layer)):
        if key in quantize_configs:
            return _copy_config(quantize_configs[key])
    activation = getattr(layer, "activation", None)
    if activation is not None and _activation_name(activation) not in _QUANTIZABLE_ACTIVATIONS:
        raise _unsupported(
            layer,
            f"has activation {_activation_name(activation)!r}, which tfmot cannot quantize "
            f"(allowed: {sorted(_QUANTIZABLE_ACTIVATIONS)})",
        )
    if isinstance(layer, (StochasticDepth, keras.layers.AveragePooling2D)):
        return NoOpQuantizeConfig()
    if isinstance(layer, keras.layers.BatchNormalization):
        if _is_folded_batch_norm(model, graph, layer):
            return None
    elif not isinstance(
        layer, (HardSwish, HardSigmoid, keras.layers.Multiply, keras.layers.Rescaling)
    ):
        if registry.supports(layer) or type(layer).__name__ in _TRANSFORMED_CLASSES:
            return None
        raise _unsupported(layer, "has no int8 quantization rule in tfmot or kerasnets")
    consumer = graph.only_consumer(layer.name)
    if consumer is not None and _is_relu(model.get_layer(consumer)):
        return NoOpQuantizeConfig()
    return OutputQuantizeConfig()


def quantize_model(model, quantize_configs=None):
    """Returns a quantization-aware (QAT) copy of ``model``, ready for ``fit`` and int8 conversion.

    A drop-in for ``tfmot.quantization.keras.quantize_model`` that also quantizes kerasnets
    layers, squeeze-and-excite ``Multiply``, ``Rescaling`` and BatchNormalization that does not
    follow a convolution. Conv-BatchNorm(-ReLU) folding and per-channel weight quantization are
    tfmot's default 8-bit scheme. The returned model has its own copy of the weights.

    Nested functional sub-models (a backbone called as ``base(inputs)``, a kerasnets builder
    or any functional model) are flattened into one graph first, with their weights, so the
    flattened float model computes the same outputs. A layer frozen in ``model`` (its own
    ``trainable`` or a sub-model's) stays frozen: kernel, bias and BatchNormalization
    weights and statistics, so ``qat.trainable_weights`` are the float model's. Its
    quantization ranges are still calibrated in training mode (tfmot sets them from the
    weights and from a moving average of the activations; no optimizer trains them): the int8
    model needs the ranges of frozen layers too.

    Args:
      model: a functional or Sequential keras model (built, with known inputs), possibly
        holding functional sub-models.
      quantize_configs: optional ``{layer name or layer class: QuantizeConfig}`` for layers
        kerasnets and tfmot have no rule for, or to override a rule; each layer gets its own
        copy of the config.

    Raises:
      ValueError: on a model that is not functional/Sequential, a sub-model that cannot be
        flattened, or a layer that cannot be quantized (the message names the layer, its type
        and the working route).
    """
    quantize_configs = dict(quantize_configs or {})
    for key, config in quantize_configs.items():
        if not isinstance(config, _tfq.QuantizeConfig):
            raise ValueError(
                "`quantize_configs` values must be tfmot QuantizeConfig instances; received "
                f"{type(config).__name__} for key {key!r}"
            )
    functional = _as_functional(model)
    graph = LayerGraph(functional)
    registry = _tfq.default_8bit.Default8BitQuantizeScheme().get_quantize_registry()
    configs = {
        layer.name: _quantize_config(functional, graph, layer, registry, quantize_configs)
        for layer in functional.layers
        if not isinstance(layer, keras.layers.InputLayer)
    }

    def annotate(layer):
        return _tfq.quantize_annotate_layer(layer, configs[layer.name])

    with quantize_scope():
        annotated = keras.models.clone_model(functional, clone_function=annotate)
        return _with_fixed_classes(_tfq.quantize_apply(annotated))
