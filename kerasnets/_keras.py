"""The one Keras that kerasnets uses: ``tf_keras`` (Keras 2).

tensorflow-model-optimization works only with Keras 2, and ``tf.keras`` resolves to Keras 3 or
Keras 2 depending on the environment. Every kerasnets module imports Keras from here, never
``tf.keras``, so the package behaves the same wherever it is installed.
"""

import tf_keras as keras
from tf_keras import backend, layers

__all__ = ["keras", "layers", "backend"]
