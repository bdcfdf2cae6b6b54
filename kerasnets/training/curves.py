"""Learning curves of a training run: ``metrics.csv`` (Keras ``CSVLogger``) drawn as a PNG.

``kerasnets.training.fit`` writes ``learning_curves.png`` beside ``metrics.csv`` at the end of
every run with a checkpoint directory; ``plot_learning_curves`` draws any such file again.
"""

import csv
import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

LEARNING_CURVES_PNG = "learning_curves.png"


def read_metrics(metrics_csv: Union[str, Path]) -> Dict[str, List[float]]:
    """Returns ``{column: values}`` of a ``metrics.csv`` (epochs from 1, ``nan`` for empty
    cells). Raises ``ValueError`` when the file has no ``epoch`` column or no row."""
    with open(metrics_csv, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "epoch" not in rows[0]:
        raise ValueError(f"{metrics_csv} holds no epoch rows (a Keras CSVLogger file)")
    columns = {key: [] for key in rows[0]}
    for row in rows:
        for key in columns:
            text = row.get(key) or ""
            try:
                columns[key].append(float(text))
            except ValueError:
                columns[key].append(math.nan)
    columns["epoch"] = [value + 1 for value in columns["epoch"]]
    return columns


def curve_series(columns: Dict[str, List[float]]) -> Dict[str, List[Tuple[str, List[float]]]]:
    """Returns ``{"loss": [(label, values)], "accuracy": [...]}``: the curves drawn from the
    ``read_metrics`` columns. A metric is its own column, or for a model with several outputs
    (early exits) one column per output, ``<output>_<metric>``; each with its validation
    counterpart ``val_...`` where that has a value."""
    series = {}
    for metric in ("loss", "accuracy"):
        keys = [metric] if metric in columns else sorted(
            key for key in columns if key.endswith("_" + metric) and not key.startswith("val_"))
        series[metric] = []
        for key in keys:
            output = "" if key == metric else key[:-len(metric) - 1] + ": "
            for prefix, name in (("", "training (augmented)"), ("val_", "validation")):
                values = columns.get(prefix + key)
                if values and not all(math.isnan(v) for v in values):
                    series[metric].append((output + name, values))
    return series


def plot_learning_curves(metrics_csv: Union[str, Path], png: Union[str, Path],
                         title: Optional[str] = None) -> Path:
    """Returns ``png`` after drawing the loss and accuracy of ``metrics_csv`` per epoch
    (``curve_series``: training and, where present, validation; per output for a model with
    several) into it.

    Raises ``ValueError`` as ``read_metrics``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = read_metrics(metrics_csv)
    epochs = columns["epoch"]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for axis, (metric, label) in zip(axes, (("loss", "loss (cross-entropy + weight decay)"),
                                            ("accuracy", "top-1 accuracy"))):
        for name, values in curve_series(columns)[metric]:
            axis.plot(epochs, values, marker=".", label=name)
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        if axis.get_lines():
            axis.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    png = Path(png)
    figure.savefig(png, dpi=100)
    plt.close(figure)
    return png
