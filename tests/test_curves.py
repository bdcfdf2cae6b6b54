"""kerasnets.training.curves: metrics.csv as learning curves."""

import math

import pytest

from kerasnets.training import curves


def test_metrics_are_read_per_epoch_from_one_and_drawn(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n"
                   "0,0.25,2.0,0.2,2.1\n1,0.5,1.5,,1.7\n")
    columns = curves.read_metrics(csv)
    assert columns["epoch"] == [1, 2]
    assert columns["accuracy"] == [0.25, 0.5]
    assert columns["val_accuracy"][0] == 0.2 and math.isnan(columns["val_accuracy"][1])
    png = curves.plot_learning_curves(csv, tmp_path / "curves.png", "run")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_file_without_epoch_rows_is_refused(tmp_path):
    (tmp_path / "empty.csv").write_text("epoch,loss\n")
    with pytest.raises(ValueError, match="holds no epoch rows"):
        curves.read_metrics(tmp_path / "empty.csv")


def test_a_model_with_several_outputs_gets_a_curve_per_output(tmp_path):
    """Early-exit models log ``<output>_accuracy`` per exit and no ``accuracy`` column; a
    validation column without a value draws nothing."""
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,exit1_accuracy,exit1_loss,exit2_accuracy,exit2_loss,loss,"
                   "val_exit1_accuracy\n0,0.3,1.9,0.35,1.8,3.7,NA\n1,0.4,1.6,0.5,1.4,3.0,NA\n")
    series = curves.curve_series(curves.read_metrics(csv))
    assert [label for label, _ in series["loss"]] == ["training (augmented)"]
    assert [(label, values) for label, values in series["accuracy"]] == [
        ("exit1: training (augmented)", [0.3, 0.4]), ("exit2: training (augmented)", [0.35, 0.5])]
    png = curves.plot_learning_curves(csv, tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
