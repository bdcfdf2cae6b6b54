"""Quantization-aware training: ``quantize_model`` wraps any kerasnets (or plain functional
tf_keras) model for tfmot 8-bit QAT, with the QuantizeConfigs tfmot lacks (hard-swish,
squeeze-and-excite ``Multiply``, standalone BatchNorm), nested sub-models flattened, frozen
layers kept frozen; ``quantize_scope`` for loading (``.h5``, SavedModel, ``.keras``)."""

from kerasnets.quantization.qat import (
    NoOpQuantizeConfig, OutputQuantizeConfig, QuantizeLayer, QuantizeWrapperV2, quantize_model,
    quantize_scope,
)

__all__ = ["NoOpQuantizeConfig", "OutputQuantizeConfig", "QuantizeLayer", "QuantizeWrapperV2",
           "quantize_model", "quantize_scope"]
