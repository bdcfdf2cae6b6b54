"""The ablation benchmark (benchmarks/ablations.py, issue 17 item 4): one pair trained end to
end on a tiny image folder, its table, resuming from the run files, and the extra-seed rule."""

import shutil
import zipfile

import pytest

from benchmarks import ablations as bench

from test_pipeline import write_image_folder

CLASSES = ("cat", "dog", "ship")


@pytest.fixture()
def tiny_data(tmp_path):
    """Returns ``(train zip, test folder)``: 4 real CIFAR JPEGs per class each."""
    folder = write_image_folder(tmp_path / "train", per_class=4, classes=CLASSES)
    archive = tmp_path / "train.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(folder.rglob("*.jpg")):
            out.write(path, path.relative_to(tmp_path).as_posix())
    shutil.rmtree(folder)
    return archive, write_image_folder(tmp_path / "test", per_class=2, classes=CLASSES)


def test_one_pair_end_to_end_then_read_back_without_training(tiny_data, tmp_path, monkeypatch):
    train, test = tiny_data
    out = tmp_path / "table.md"
    argv = ["--train", str(train), "--test", str(test), "--pairs", "v3s_se", "--epochs", "1",
            "--input-size", "32", "--batch-size", "6", "--train-limit", "10",
            "--calibration", "4", "--latency-secs", "0.05", "--close-margin", "0",
            "--work", str(tmp_path / "work"), "--out", str(out)]
    assert bench.main(argv) == 0
    table = out.read_text()
    rows = [line for line in table.splitlines() if line.startswith("| v3s_se")]
    assert len(rows) == 2
    assert "mobilenet_v3_small default" in rows[0] and "se=False" in rows[1]
    assert "int8 dot products" in table and "10 training images" in table
    # Same weights shapes but SE blocks removed: the ablation has fewer params and MACs.
    params = [int(row.split("|")[5].replace(",", "")) for row in rows]
    assert params[0] > params[1]
    for name in ("mobilenet_v3_small-s0", "mobilenet_v3_small-se=False-s0"):
        assert (tmp_path / "work" / name / bench.RESULT).is_file()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(bench, "fit", no_training)
    assert bench.main(argv + ["--resume"]) == 0
    assert out.read_text().split("\n", 1)[1] == table.split("\n", 1)[1]  # header has the load


def test_a_stopped_run_needs_resume(tiny_data, tmp_path, capsys):
    train, test = tiny_data
    (tmp_path / "work" / "mobilenet_v2-s0").mkdir(parents=True)
    (tmp_path / "work" / "mobilenet_v2-s0" / "run.json").write_text("{}")
    code = bench.main(["--train", str(train), "--test", str(test), "--pairs", "v2_linear",
                       "--work", str(tmp_path / "work")])
    assert code == 2
    assert "pass --resume" in capsys.readouterr().err


def test_pairs_closer_than_the_margin_get_one_more_seed(tiny_data, monkeypatch):
    train, test = tiny_data
    top1 = {(): 0.500, (("se", False),): 0.495}  # 0.5 points apart

    def fake_run(model, kwargs, seed, args, train_source, test_source):
        return {"model": model, "kwargs": kwargs, "seed": seed,
                "top1": top1[tuple(sorted(kwargs.items()))]}

    monkeypatch.setattr(bench, "train_run", fake_run)
    argv = ["--train", str(train), "--test", str(test), "--pairs", "v3s_se", "--seeds", "3"]
    seeds = [[r["seed"] for r in pair] for pair in bench.run_pairs(bench.parse_args(argv))["v3s_se"]]
    assert seeds == [[3, 3], [4, 4]]
    wide = bench.run_pairs(bench.parse_args(argv + ["--close-margin", "0.4"]))
    assert [[r["seed"] for r in pair] for pair in wide["v3s_se"]] == [[3, 3]]
