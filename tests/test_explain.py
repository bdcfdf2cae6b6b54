"""``kerasnets explain linear-bottleneck`` (issue 17 item 3): MobileNetV2's Figure 1 experiment,
its numbers and its figure."""

import numpy as np
import pytest

from kerasnets import cli
from kerasnets import explain


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_more_dimensions_lose_less_of_the_spiral(seed):
    result = explain.linear_bottleneck(seed=seed)
    fractions = [result.recovered[n] for n in explain.DIMENSIONS]
    # The paper's reading of Fig. 1: n = 2, 3 lose much of the manifold, n = 15 to 30 keep it.
    assert fractions == sorted(fractions), fractions
    assert fractions[0] < 0.5 and fractions[1] < 0.75 and fractions[-1] == 1.0
    assert result.recovered[15] > 0.99


def test_recovered_points_with_the_identity_are_the_first_quadrant():
    """With T = I (n = 2), ReLU keeps exactly the points with both coordinates positive."""
    x = explain.spiral(500)
    got = explain.recover(np.maximum(x, 0.0), np.eye(2))
    quadrant = (x[:, 0] > 0) & (x[:, 1] > 0)
    assert 0.1 < quadrant.mean() < 0.5
    np.testing.assert_array_equal(~np.isnan(got[:, 0]), quadrant)
    np.testing.assert_allclose(got[quadrant], x[quadrant], atol=1e-12)


def test_results_are_deterministic_per_seed():
    a, b = explain.linear_bottleneck(seed=3, trials=2), explain.linear_bottleneck(seed=3, trials=2)
    c = explain.linear_bottleneck(seed=4, trials=2)
    assert a.recovered == b.recovered
    np.testing.assert_array_equal(a.projections[5], b.projections[5])
    assert not np.allclose(a.projections[5], c.projections[5])


def test_command_writes_the_png_and_prints_the_fractions(tmp_path, capsys):
    out = tmp_path / "fig.png"
    status = cli.main(["explain", "linear-bottleneck", "--out", str(out), "--seed", "0",
                       "--trials", "5"])
    assert status == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and lines[1].startswith("n=  2:") and lines[-1].startswith("n= 30: 100.0 %")


@pytest.mark.parametrize("args", [["--out", "fig.jpg"], ["--out", "f.png", "--dims", "0", "5"],
                                  ["--out", "f.png", "--trials", "0"]])
def test_bad_input_exits_2(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["explain", "linear-bottleneck"] + args) == 2
    assert not (tmp_path / "f.png").exists()
