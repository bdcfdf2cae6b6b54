"""Layers and building blocks shared by the model families.

- ``custom``: the Keras layers kerasnets adds (``HardSwish``, ``HardSigmoid``,
  ``StochasticDepth``), registered for serialization; ``custom_objects()`` for loading.
- ``blocks``: conv-BN-activation, depthwise separable, inverted residual with linear bottleneck,
  squeeze-and-excite, dense layer and transition, built from Keras layers only.
"""

from kerasnets.layers.custom import HardSigmoid, HardSwish, StochasticDepth, custom_objects

__all__ = ["HardSigmoid", "HardSwish", "StochasticDepth", "custom_objects"]
