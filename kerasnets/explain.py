"""Experiments that explain the networks' design with numbers and figures.

``linear_bottleneck``: the experiment of MobileNetV2's Figure 1 (Sandler et al., 2018,
"MobileNetV2: Inverted Residuals and Linear Bottlenecks", arXiv:1801.04381, section 3.2), the
argument for a linear (no-ReLU) projection: a 2-D spiral (the "manifold of interest") is
embedded into n dimensions by a random matrix T, passed through ReLU and projected back to 2-D
with T's pseudo-inverse. With few dimensions ReLU collapses parts of the spiral (information
lost); with many it keeps all of it.

Library code only (numpy; matplotlib for the figure, with its Agg backend, no display);
``kerasnets explain`` is its command line.
"""

import dataclasses
import numbers
from typing import Dict, Tuple

import numpy as np

DIMENSIONS = (2, 3, 5, 15, 30)  # the n of the paper's Figure 1
SPIRAL_TURNS = (0.5 * np.pi, 4.0 * np.pi)  # the spiral's angle range (1.75 turns)


def spiral(points=1000):
    """Returns ``points`` points of a 2-D spiral, float64 array ``(points, 2)``.

    ``t (cos t, sin t) / 4pi`` for t evenly spaced over ``SPIRAL_TURNS``: it winds around the
    origin, so every direction of the plane holds some of its points, and has radius <= 1.
    """
    t = np.linspace(*SPIRAL_TURNS, points)
    return np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / SPIRAL_TURNS[1]


def recover(outputs, embedding):
    """Returns the inputs recovered from ReLU outputs, float64 ``(m, 2)``, NaN where none can be.

    ``outputs``: ``relu(x @ T.T)`` of shape ``(m, n)``; ``embedding``: T, ``(n, 2)``. A unit
    that ReLU left positive still reads ``T_i x``; a zero says only ``T_i x <= 0``. So x is
    determined exactly when the rows of T at the positive units span the plane (rank 2), and is
    then ``pinv(T_S) y_S``, S the positive units; otherwise the point is lost (NaN).
    """
    active = (outputs > 0).astype(np.float64)
    # pinv(T_S) y_S = (T_S' T_S)^-1 T_S' y_S when T_S has full column rank; the Gram matrix
    # T_S' T_S is singular (up to rounding) exactly when it has not.
    gram = np.einsum("mi,ij,ik->mjk", active, embedding, embedding)
    rhs = outputs @ embedding
    det = np.linalg.det(gram)
    scale = np.einsum("mjj->m", gram) ** 2
    full_rank = det > 1e-10 * np.maximum(scale, np.finfo(np.float64).tiny)
    recovered = np.full(rhs.shape, np.nan)
    if full_rank.any():
        recovered[full_rank] = np.linalg.solve(gram[full_rank], rhs[full_rank][..., None])[..., 0]
    return recovered


@dataclasses.dataclass(frozen=True)
class LinearBottleneck:
    """The result of ``linear_bottleneck``.

    Attributes:
      inputs: the spiral, ``(points, 2)``.
      projections: ``{n: pinv(T) @ relu(T @ x)}`` for each n, ``(points, 2)``: what the paper's
        Figure 1 draws (one draw of T).
      recovered: ``{n: fraction}`` of the spiral's points recovered from the ReLU output, in
        [0, 1], the mean over ``trials`` draws of T (see ``linear_bottleneck``).
      drawn: ``{n: fraction}`` recovered with the one T the figure draws.
      trials: the number of random matrices T per n.
      seed: the random seed.
    """

    inputs: np.ndarray
    projections: Dict[int, np.ndarray]
    recovered: Dict[int, float]
    drawn: Dict[int, float]
    trials: int
    seed: int

    def table(self):
        """Returns the fractions as text, one line per n."""
        return "\n".join(
            f"n={n:>3}: {100 * f:5.1f} % of the spiral's points recovered after ReLU"
            for n, f in self.recovered.items())


def _check_int(name, value, minimum):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; received {name}={value!r}")
    return int(value)


def linear_bottleneck(dims=DIMENSIONS, points=1000, trials=20, seed=0, tolerance=1e-6):
    """Returns the ``LinearBottleneck`` result of MobileNetV2's Figure 1 experiment.

    For each n in ``dims``: T is an ``(n, 2)`` matrix of standard normal entries; each spiral
    point x gives ``y = relu(T x)``. A point counts as **recovered** when ``recover`` (the
    pseudo-inverse of the rows of T that ReLU left positive, read off y alone) returns a point
    within ``tolerance`` times the spiral's radius (1) of x; that happens exactly when those rows
    span the plane, so the fraction measures the information ReLU kept. It is averaged over
    ``trials`` draws of T, since one draw can be lucky or unlucky. Deterministic for a ``seed``.

    The figure's projections use the plain pseudo-inverse of T on all units, as the paper does.

    Raises:
      ValueError: ``dims`` is not a non-empty sequence of integers >= 1, or ``points`` < 2,
        ``trials`` < 1, ``seed`` < 0 (not integers), or ``tolerance`` <= 0.
    """
    if not isinstance(dims, (tuple, list)) or not dims:
        raise ValueError(f"`dims` must be a non-empty sequence of integers >= 1; received "
                         f"dims={dims!r}")
    dims = tuple(_check_int("dims", n, 1) for n in dims)
    points, trials = _check_int("points", points, 2), _check_int("trials", trials, 1)
    seed = _check_int("seed", seed, 0)
    if not isinstance(tolerance, numbers.Real) or isinstance(tolerance, bool) or tolerance <= 0:
        raise ValueError(f"`tolerance` must be a number > 0; received tolerance={tolerance!r}")
    x = spiral(points)
    projections, recovered, drawn = {}, {}, {}
    for n in dims:
        rng = np.random.default_rng([seed, n])
        fractions = []
        for trial in range(trials):
            embedding = rng.standard_normal((n, 2))
            outputs = np.maximum(x @ embedding.T, 0.0)
            error = np.linalg.norm(recover(outputs, embedding) - x, axis=1)
            fractions.append(float(np.mean(np.nan_to_num(error, nan=np.inf) <= tolerance)))
            if trial == 0:
                projections[n] = outputs @ np.linalg.pinv(embedding).T
                drawn[n] = fractions[0]
        recovered[n] = float(np.mean(fractions))
    return LinearBottleneck(x, projections, recovered, drawn, trials, seed)


def plot_linear_bottleneck(result, path):
    """Returns ``path`` after writing the figure of ``result`` there (PNG, matplotlib Agg).

    Panels side by side: the input spiral, then ``pinv(T) relu(T x)`` for each n, titled with
    the fraction recovered with the drawn T and the mean over all draws; points are coloured
    along the spiral, so collapsed parts show.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [("Input", result.inputs)] + [
        (f"n = {n}: {100 * result.drawn[n]:.0f} % recovered\n"
         f"(mean of {result.trials} T: {100 * result.recovered[n]:.0f} %)", result.projections[n])
        for n in result.projections]
    figure = Figure(figsize=(2.4 * len(panels), 2.8))
    FigureCanvasAgg(figure)
    colours = np.linspace(0.0, 1.0, len(result.inputs))
    for i, (title, points) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), i + 1)
        axes.scatter(points[:, 0], points[:, 1], c=colours, cmap="viridis", s=2)
        axes.set_title(title, fontsize=9)
        axes.set_aspect("equal", adjustable="datalim")
        axes.set_xticks([])
        axes.set_yticks([])
    figure.suptitle("ReLU(T x) projected back with pinv(T) (MobileNetV2 Fig. 1)", fontsize=10)
    figure.tight_layout()
    figure.savefig(str(path), format="png", dpi=120)
    return path
