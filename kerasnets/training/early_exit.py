"""Joint training of multi-exit models: the weighted sum of the per-exit cross-entropies.

MSDNet (Huang et al., 2018, "Multi-Scale Dense Networks for Resource Efficient Image
Classification", ICLR, arXiv:1703.09844, section 4 "Loss functions") trains every classifier at
once on ``sum_k w_k * CE(exit_k)``, with ``w_k = 1`` ("uniform") by default.

``kerasnets.training.fit.fit`` trains a multi-exit model with that default as it is: Keras
applies its one loss to every output with weight 1 and feeds every output the same labels.
``compile_joint`` is for other weights (``"linear"`` or one per exit) or a Keras ``fit`` of
your own.
"""

import numbers
from typing import List, Sequence, Union

from kerasnets._keras import keras
from kerasnets.models.convention import check_positive_int

JOINT_WEIGHTS = ("uniform", "linear")


def joint_loss_weights(num_exits: int, kind: str = "uniform") -> List[float]:
    """Returns the per-exit weights of the joint loss, summing to ``num_exits``.

    ``"uniform"``: every exit weighs 1 (MSDNet's default, ``joint_weight uniform``);
    ``"linear"``: exit k weighs proportionally to k, favouring the late, accurate exits.

    Raises:
      ValueError: ``num_exits`` not a positive integer, or ``kind`` not in ``JOINT_WEIGHTS``.
    """
    check_positive_int("num_exits", num_exits)
    if kind == "uniform":
        return [1.0] * num_exits
    if kind == "linear":
        total = num_exits * (num_exits + 1) / 2
        return [num_exits * k / total for k in range(1, num_exits + 1)]
    raise ValueError(f"`kind` must be one of {JOINT_WEIGHTS}; received kind={kind!r}")


def _check_loss_weights(loss_weights, num_exits):
    """Returns the per-exit weights of ``loss_weights`` (a ``JOINT_WEIGHTS`` name or one number
    >= 0 per exit, not all 0) as floats."""
    if isinstance(loss_weights, str):
        return joint_loss_weights(num_exits, loss_weights)
    weights = list(loss_weights) if isinstance(loss_weights, (list, tuple)) else None
    if (weights is None or len(weights) != num_exits or any(
            not isinstance(w, numbers.Real) or isinstance(w, bool) or not w >= 0
            for w in weights) or not sum(weights) > 0):
        raise ValueError(
            f"`loss_weights` must be one of {JOINT_WEIGHTS} or {num_exits} non-negative "
            f"numbers (one per exit), not all 0; received loss_weights={loss_weights!r}"
        )
    return [float(w) for w in weights]


def compile_joint(model: keras.Model, optimizer: Union[str, keras.optimizers.Optimizer],
                  loss_weights: Union[str, Sequence[float]] = "uniform",
                  from_logits: bool = False) -> keras.Model:
    """Returns ``model`` compiled to minimize the weighted sum of its per-exit cross-entropies.

    The labels are integer class indices, one array for every exit (Keras feeds a single label
    array to every output); each exit reports its own ``accuracy``.

    Args:
      model: a multi-exit model (one output per exit), float or QAT.
      optimizer: a Keras optimizer (or its name).
      loss_weights: ``"uniform"``, ``"linear"`` (``joint_loss_weights``) or one non-negative
        number per exit.
      from_logits: whether the exits output logits (``classifier_activation=None``); False for
        softmax outputs.

    Raises:
      ValueError: ``loss_weights`` of another length than the exits, negative or all 0, or an
        unknown name.
    """
    num_exits = len(model.outputs)
    weights = _check_loss_weights(loss_weights, num_exits)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    model.compile(optimizer=optimizer, loss=[loss] * num_exits, loss_weights=weights,
                  metrics=[["accuracy"] for _ in range(num_exits)])
    return model
