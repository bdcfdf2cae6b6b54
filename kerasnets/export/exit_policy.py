"""The exit policy of early-exit models: which exit answers each image, what that costs, and the
thresholds that are most accurate within a budget.

An image leaves at the first exit whose confidence (its largest softmax probability) reaches that
exit's threshold; the last exit always answers, so a policy has one threshold per *early* exit.
This is the budgeted batch classification of MSDNet (Huang et al., 2018, "Multi-Scale Dense
Networks for Resource Efficient Image Classification", ICLR, arXiv:1703.09844, section 3).

- ``exit_decisions``/``simulate_exits``: the policy on known per-exit outputs (NumPy), and its
  accuracy, average cost and exit histogram.
- ``calibrate_thresholds``: per-exit thresholds for a target average cost (MACs or measured
  seconds) chosen on held-out outputs.
- ``softmax``, ``exit_outputs_are_probabilities``: what the policy reads from a model's exits.

Threshold semantics: an exit other than the last answers when ``max softmax >= threshold``;
a threshold of exactly 1.0 means "never answer here" (float32 softmax rounds very confident
outputs to exactly 1.0, so ``>= 1.0`` alone would still let those exit), and 0 answers every
image. ``kerasnets.export.stages.StagedRuntime`` runs the same policy on TFLite stages.
"""

import dataclasses
import numbers
from typing import TYPE_CHECKING, Sequence, Tuple, Union

import numpy as np

if TYPE_CHECKING:  # NumPy alone at import: the staged runtime's command answers --help fast
    from kerasnets._keras import keras

# The largest threshold calibration picks: below the largest float32 under 1 (1 - 2**-24), so
# that confidences that rounded to 1.0 or just under it still exit, and never 1.0 itself, which
# means "never exit here".
MAX_EXIT_THRESHOLD = 1.0 - 1e-7

Thresholds = Union[float, Sequence[float], np.ndarray]


def check_thresholds(thresholds: Thresholds, num_exits: int) -> Tuple[float, ...]:
    """Returns the thresholds of the ``num_exits - 1`` early exits as a tuple of floats.

    ``thresholds`` is one number (the same for every early exit) or one number per early exit
    (the last exit always answers), each in [0, 1].

    Raises:
      ValueError: a value outside [0, 1], or a list of another length than ``num_exits - 1``.
    """
    from kerasnets.models.convention import check_positive_int

    check_positive_int("num_exits", num_exits)
    if isinstance(thresholds, numbers.Real) and not isinstance(thresholds, bool):
        values = [thresholds] * (num_exits - 1)
    elif isinstance(thresholds, (list, tuple, np.ndarray)):
        values = list(np.asarray(thresholds).ravel()) if isinstance(thresholds, np.ndarray) \
            else list(thresholds)
        if len(values) != num_exits - 1:
            raise ValueError(
                f"`thresholds` must have one value per early exit: {num_exits - 1} for a model "
                f"with {num_exits} exits (the last exit always answers); received "
                f"{len(values)} values: thresholds={list(thresholds)!r}"
            )
    else:
        raise ValueError(
            "`thresholds` must be a number in [0, 1] or a list of them (one per early exit); "
            f"received thresholds={thresholds!r}"
        )
    for value in values:
        if (not isinstance(value, numbers.Real) or isinstance(value, bool)
                or not 0.0 <= float(value) <= 1.0):
            raise ValueError(
                "`thresholds` must lie in [0, 1] (a max-softmax confidence; 1.0 never exits "
                f"early, 0 always does); received thresholds={thresholds!r}"
            )
    return tuple(float(v) for v in values)


def _check_probabilities(probabilities):
    """Returns the per-exit outputs as a float array ``(exits, n, classes)`` after validation."""
    if not isinstance(probabilities, (list, tuple)) or len(probabilities) < 2:
        raise ValueError(
            "`probabilities` must be a list of the softmax outputs of each exit (at least 2 "
            f"exits), arrays (n, classes); received {type(probabilities).__name__}"
        )
    arrays = [np.asarray(p, dtype="float64") for p in probabilities]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 2:
        raise ValueError(
            "`probabilities` must hold one (n, classes) array per exit, all the same shape; "
            f"received shapes {[a.shape for a in arrays]}"
        )
    return np.stack(arrays)


def exit_decisions(probabilities: Sequence[np.ndarray],
                   thresholds: Thresholds) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns ``(exit_index, prediction, confidence)`` arrays (n,) of the threshold policy.

    Args:
      probabilities: per exit, the softmax outputs ``(n, classes)`` of the n images.
      thresholds: as ``check_thresholds``: an image leaves at the first early exit k whose
        max probability is >= thresholds[k] (a threshold of 1.0 never lets it leave there),
        otherwise at the last exit.

    Raises:
      ValueError: fewer than 2 exits, exits of different shapes, or bad ``thresholds``.
    """
    probs = _check_probabilities(probabilities)
    num_exits, n = probs.shape[:2]
    thresholds = check_thresholds(thresholds, num_exits)
    confidence = probs.max(axis=-1)
    exit_index = np.full(n, num_exits - 1)
    pending = np.ones(n, dtype=bool)
    for k, threshold in enumerate(thresholds):
        if threshold < 1.0:
            leave = pending & (confidence[k] >= threshold)
            exit_index[leave] = k
            pending &= ~leave
    rows = np.arange(n)
    return (exit_index, probs[exit_index, rows].argmax(axis=-1),
            confidence[exit_index, rows])


@dataclasses.dataclass(frozen=True)
class ExitResult:
    """What a threshold policy does on a labelled set: ``accuracy`` (0-1), ``average_cost`` (in
    the unit of the stage costs), ``exit_counts`` (images leaving at each exit)."""

    thresholds: Tuple[float, ...]
    accuracy: float
    average_cost: float
    exit_counts: Tuple[int, ...]


def _check_costs(stage_costs, num_exits):
    """Returns the stage costs as a float array after checking there is one >= 0 per exit."""
    costs = list(stage_costs) if isinstance(stage_costs, (list, tuple, np.ndarray)) else None
    if costs is None or len(costs) != num_exits or any(
            not isinstance(c, numbers.Real) or isinstance(c, bool) or not c >= 0 for c in costs):
        raise ValueError(
            f"`stage_costs` must hold one cost >= 0 per stage ({num_exits}): the MACs or "
            f"seconds of stage k (its layers and its exit); received stage_costs={stage_costs!r}"
        )
    return np.asarray(costs, dtype="float64")


def simulate_exits(probabilities: Sequence[np.ndarray], labels: np.ndarray,
                   thresholds: Thresholds, stage_costs: Sequence[float]) -> ExitResult:
    """Returns the ``ExitResult`` of ``thresholds`` on images with known per-exit outputs.

    An image leaving at exit k costs stages 1..k (each stage includes its own exit).

    Raises:
      ValueError: malformed probabilities or thresholds (``exit_decisions``), a cost per stage
        missing or negative, or another number of labels than images.
    """
    probs = _check_probabilities(probabilities)
    costs = np.cumsum(_check_costs(stage_costs, probs.shape[0]))
    labels = np.asarray(labels).ravel()
    if labels.shape[0] != probs.shape[1]:
        raise ValueError(f"`labels` has {labels.shape[0]} entries for {probs.shape[1]} images")
    exit_index, prediction, _ = exit_decisions(list(probs), thresholds)
    return ExitResult(check_thresholds(thresholds, probs.shape[0]),
                      float(np.mean(prediction == labels)), float(np.mean(costs[exit_index])),
                      tuple(int(c) for c in np.bincount(exit_index, minlength=probs.shape[0])))


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Thresholds chosen by ``calibrate_thresholds`` and what they did on the held-out images."""

    thresholds: Tuple[float, ...]
    budget: float
    method: str
    held_out: ExitResult


def _geometric_thresholds(confidence, q):
    """Returns the thresholds that let a fraction ``z (1 - q)^k q`` of the images leave at exit k
    (the exit distribution of MSDNet's budgeted batch classification), chosen on ``confidence``
    (exits, n)."""
    num_exits, n = confidence.shape
    shares = q * (1 - q) ** np.arange(num_exits)
    shares /= shares.sum()
    pending = np.ones(n, dtype=bool)
    thresholds = []
    for k in range(num_exits - 1):
        count = int(round(shares[k] * n))
        remaining = np.sort(confidence[k][pending])[::-1]
        if count <= 0 or remaining.size == 0:
            thresholds.append(1.0)
            continue
        threshold = min(float(remaining[min(count, remaining.size) - 1]), MAX_EXIT_THRESHOLD)
        thresholds.append(threshold)
        pending &= ~(confidence[k] >= threshold)
    return tuple(thresholds)


def _candidate_thresholds(confidence, grid):
    """Yields ``(method, thresholds)``: the ``"shared"`` thresholds (1.0, 0 and ``grid``
    quantiles of the early exits' ``confidence`` (exits, n)), then ``grid`` ``"geometric"``
    ones."""
    early_exits = confidence.shape[0] - 1
    yield "shared", (1.0,) * early_exits
    yield "shared", (0.0,) * early_exits
    for t in np.unique(np.quantile(confidence[:-1].ravel(), np.linspace(0, 1, grid))):
        yield "shared", (min(float(t), MAX_EXIT_THRESHOLD),) * early_exits
    for q in np.linspace(0, 1, grid + 2)[1:-1]:
        yield "geometric", _geometric_thresholds(confidence, q)


def calibrate_thresholds(probabilities: Sequence[np.ndarray], labels: np.ndarray,
                         stage_costs: Sequence[float], budget: float,
                         grid: int = 200) -> Calibration:
    """Returns the ``Calibration`` of the most accurate thresholds whose average cost on the
    held-out images is at most ``budget``.

    Candidates are two one-parameter families, each swept on ``grid`` points: one threshold
    shared by every early exit (the quantiles of the held-out confidences, plus 1.0), and
    MSDNet's geometric exit shares (``_geometric_thresholds``). Ties in accuracy go to the
    cheaper policy.

    Args:
      probabilities: per exit, the softmax outputs ``(n, classes)`` of held-out images (not the
        images the result will be reported on).
      labels: their integer labels.
      stage_costs: the cost of each stage (MACs, or measured seconds), one per exit.
      budget: the largest acceptable average cost per image, in the unit of ``stage_costs``.

    Raises:
      ValueError: a budget below the cost of the first stage (no policy is that cheap), or
        malformed arguments.
    """
    from kerasnets.models.convention import check_positive_int

    probs = _check_probabilities(probabilities)
    costs = _check_costs(stage_costs, probs.shape[0])
    if not isinstance(budget, numbers.Real) or isinstance(budget, bool) or not budget >= 0:
        raise ValueError(f"`budget` must be a number >= 0; received budget={budget!r}")
    if budget < costs[0] * (1 - 1e-9):
        raise ValueError(
            f"`budget`={budget!r} is below the cost of the first stage ({costs[0]!r}): even "
            "threshold 0 (every image leaves at the first exit) costs that much"
        )
    check_positive_int("grid", grid)
    best = None
    for method, thresholds in _candidate_thresholds(probs.max(axis=-1), grid):
        result = simulate_exits(list(probs), labels, thresholds, costs)
        if result.average_cost > budget * (1 + 1e-9):
            continue
        key = (result.accuracy, -result.average_cost)
        if best is None or key > best[0]:
            best = (key, method, result)
    _, method, result = best
    return Calibration(result.thresholds, float(budget), method, result)


def exit_outputs_are_probabilities(model: "keras.Model") -> bool:
    """Returns True if every exit of a float multi-exit model ends in softmax, False if every
    exit outputs logits (``classifier_activation=None``); raises ValueError otherwise."""
    kinds = set()
    for name in model.output_names:
        activation = getattr(model.get_layer(name), "activation", None)
        kinds.add(getattr(activation, "__name__", None))
    if kinds == {"softmax"}:
        return True
    if kinds == {"linear"}:
        return False
    raise ValueError(
        f"the exits of {model.name!r} must all output softmax probabilities or all logits; "
        f"their activations are {sorted(map(str, kinds))}"
    )


def softmax(logits: np.ndarray) -> np.ndarray:
    """Returns the softmax of ``logits`` along the last axis (NumPy, numerically stable)."""
    z = np.asarray(logits, dtype="float64")
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)

