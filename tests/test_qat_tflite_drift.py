"""benchmarks/qat_tflite_drift.py: the per-tensor comparison of a QAT Keras model with its whole
int8 model."""

import numpy as np

from kerasnets._keras import keras, layers


def test_tensor_drift_finds_the_qat_layers_in_the_int8_model():
    """The QUANTIZE of the input is exact; the convolution's int8 output holds the QAT layer's
    fake-quantized output to within rounding (an int8 kernel rounds its own way); a tensor the
    QAT model has no layer for is left out."""
    from benchmarks.qat_tflite_drift import tensor_drift
    from kerasnets.export.convert import tflite_converter
    from kerasnets.quantization.qat import quantize_model

    keras.utils.set_random_seed(0)
    inputs = layers.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    outputs = layers.Dense(3, name="head")(layers.GlobalAveragePooling2D(name="pool")(x))
    qat = quantize_model(keras.Model(inputs, outputs))
    images = np.random.default_rng(0).normal(size=(32, 8, 8, 3)).astype("float32")
    qat.compile(keras.optimizers.SGD(0.0), "mse")
    qat.fit(images, np.zeros((32, 3)), batch_size=32, epochs=1, verbose=0)  # sets the ranges
    drift = tensor_drift(qat, tflite_converter(qat, "int8", images).convert(), images[:8])
    # Keras numbers unnamed layers per process: look the names up.
    (quantize,) = [l.name for l in qat.layers if type(l).__name__ == "QuantizeLayer"]
    (conv,) = [l.name for l in qat.layers
               if getattr(getattr(l, "layer", None), "name", "") == "conv"]
    op, mean_steps, share, largest = drift[quantize]
    assert op == "QUANTIZE" and share == 0.0 and largest < 1e-3
    op, mean_steps, share, largest = drift[conv]
    assert op == "CONV_2D" and mean_steps < 0.1 and largest <= 1
    assert set(drift) <= {layer.name for layer in qat.layers}
