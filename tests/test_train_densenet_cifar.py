"""The DenseNet CIFAR training benchmark (benchmarks/train_densenet_cifar.py): it trains through
kerasnets.training.fit with the paper's recipe, and its command line checks its input."""

import types

import pytest

from benchmarks import train_densenet_cifar as bench
from kerasnets.data import loader

from test_pipeline import write_image_folder


def test_trains_through_fit_with_the_papers_l2_recipe(tmp_path, monkeypatch):
    for split in ("train", "test"):
        write_image_folder(tmp_path / split, per_class=2, classes=("cat", "dog", "ship"))
    calls = []

    def recording_fit(model, train, eval_data, **kwargs):
        calls.append((model, train, eval_data, kwargs))
        trained = types.SimpleNamespace(count_params=lambda: 1)
        return types.SimpleNamespace(model=trained, history={"val_accuracy": [0.25, 0.5]})

    monkeypatch.setattr(bench, "fit", recording_fit)
    result = bench.train("densenet_40_k12", 2, 2, tmp_path, limit_train=4, seed=3)
    (model, train, eval_data, kwargs), = calls
    recipe = kwargs["recipe"]
    # Huang et al. 2017 sec. 4.2: weight decay 1e-4 as the Torch code's L2 on every parameter
    # (added to the loss by fit), SGD with Nesterov momentum 0.9, drops at 50 % and 75 %.
    assert (recipe.weight_decay, recipe.decay_on) == (1e-4, "all")
    assert (recipe.optimizer_name, recipe.nesterov, recipe.momentum) == ("sgd", True, 0.9)
    assert recipe.drops == (0.5, 0.75)
    assert model == "densenet_40_k12" and kwargs["epochs"] == 2
    assert isinstance(train, loader.Input) and train.augment == "cifar"
    assert (train.source.num_examples, train.batch_size, train.seed) == (4, 2, 3)
    assert eval_data.num_examples == 6
    assert result["test_accuracy"] == 0.5 and result["train_images"] == 4


def test_command_line_rejects_bad_values(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        bench.parse_args(["--epochs", "0"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        bench.parse_args(["--data", str(tmp_path)])
    assert "must contain train/ and test/" in capsys.readouterr().err
