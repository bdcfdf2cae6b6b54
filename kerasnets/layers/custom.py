"""Custom Keras layers of kerasnets, registered for serialization.

Every op in a kerasnets model graph is a Keras layer (no raw ``tf.*`` calls on symbolic tensors,
which would become ``TFOpLambda`` layers): that is what lets one QAT path, saving and weight
import serve every model.
"""

import tensorflow as tf

from kerasnets._keras import keras

_PACKAGE = "kerasnets"


@keras.utils.register_keras_serializable(package=_PACKAGE)
class HardSigmoid(keras.layers.Layer):
    """Returns ``relu6(x + 3) / 6``, the hard sigmoid of MobileNetV3 (Howard et al., 2019, eq. 2).

    Written exactly as keras.applications writes it, so that outputs match to the last bits.
    """

    def call(self, inputs):
        return tf.nn.relu6(inputs + 3.0) * (1.0 / 6.0)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.utils.register_keras_serializable(package=_PACKAGE)
class HardSwish(keras.layers.Layer):
    """Returns ``x * relu6(x + 3) / 6``, the hard swish of MobileNetV3 (Howard et al., 2019)."""

    def call(self, inputs):
        return inputs * (tf.nn.relu6(inputs + 3.0) * (1.0 / 6.0))

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.utils.register_keras_serializable(package=_PACKAGE)
class StochasticDepth(keras.layers.Layer):
    """Returns the residual branch, dropped per sample with probability ``rate`` in training.

    Stochastic depth (Huang et al., 2016, "Deep Networks with Stochastic Depth"), in the
    "drop path" form used by timm and EfficientNet: during training each sample's branch is kept
    with probability ``1 - rate`` and scaled by ``1 / (1 - rate)``, so inference is the identity.

    Args:
      rate: drop probability in ``[0, 1)``.
    """

    def __init__(self, rate=0.0, **kwargs):
        super().__init__(**kwargs)
        rate = float(rate)
        if not 0.0 <= rate < 1.0:
            raise ValueError(
                f"StochasticDepth: `rate` must be in [0, 1); received rate={rate!r}"
            )
        self.rate = rate

    def call(self, inputs, training=None):
        if training is None:
            training = keras.backend.learning_phase()

        def dropped():
            keep = 1.0 - self.rate
            shape = [tf.shape(inputs)[0]] + [1] * (inputs.shape.rank - 1)
            mask = tf.floor(keep + tf.random.uniform(shape, dtype=inputs.dtype))
            return inputs * mask / keep

        if self.rate == 0.0:
            return tf.identity(inputs)
        return keras.backend.in_train_phase(dropped, lambda: tf.identity(inputs), training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["rate"] = self.rate
        return config


def custom_objects():
    """Returns the ``{name: class}`` map of kerasnets layers, for ``load_model`` without import."""
    return {cls.__name__: cls for cls in (HardSigmoid, HardSwish, StochasticDepth)}
