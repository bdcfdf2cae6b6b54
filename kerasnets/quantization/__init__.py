"""Quantization-aware training: ``quantize_model`` wraps any kerasnets (or plain functional
tf_keras) model for tfmot 8-bit QAT, with the QuantizeConfigs tfmot lacks (hard-swish,
squeeze-and-excite ``Multiply``, standalone BatchNorm); ``quantize_scope`` for loading."""

from kerasnets.quantization.qat import (
    NoOpQuantizeConfig, OutputQuantizeConfig, quantize_model, quantize_scope,
)

__all__ = ["NoOpQuantizeConfig", "OutputQuantizeConfig", "quantize_model", "quantize_scope"]
