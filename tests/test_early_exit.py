"""Tests of early exits along the pipeline: the multi-exit DenseNet and MSDNet builders
(kerasnets/models/early_exit.py), joint training (kerasnets/training/early_exit.py and the
evaluation script's training through kerasnets.training.fit), the stage split
(kerasnets/export/stage_split.py), the threshold policy and its calibration
(kerasnets/export/exit_policy.py), the TFLite stages with their LiteRT runtime
(kerasnets/export/stages.py) and the command line (kerasnets/cli/early_exit.py)."""

import json
import subprocess
import sys

import numpy as np
import pytest

import kerasnets
from kerasnets import data
from helpers import randomize_batchnorm
from kerasnets._keras import keras
from kerasnets.cli import early_exit as early_exit_cli
from kerasnets.export import exit_policy as policy
from kerasnets.export import stage_split
from kerasnets.export import stages as staged
from kerasnets.models import early_exit as ee
from kerasnets.models.profiler import profile
from kerasnets.models.registry import get_entry
from kerasnets.training import early_exit as joint

CLASSES = 10


@pytest.fixture(scope="module")
def images():
    """Returns 30 real CIFAR-10 images of the embedded subset, preprocessed ("cifar10")."""
    image_set = data.load_image_folder(data.embedded_dataset("test"), 32, per_class=3,
                                       progress=False)
    return data.preprocess(image_set.images, "cifar10"), image_set.labels


@pytest.fixture(scope="module")
def tiny_msdnet():
    """A 3-exit MSDNet small enough for fast tests (3 scales, 1 layer per block)."""
    keras.utils.set_random_seed(0)
    return randomize_batchnorm(ee.MSDNetCifar(blocks=3, step=1, base=1, growth_rate=2,
                                              stem_channels=4, classifier_channels=8,
                                              classes=CLASSES), spread=0.3)


@pytest.fixture(scope="module")
def tiny_densenet():
    """A 3-exit DenseNet-BC-16 (k=4): exits after layer 1 of block 1 and after block 2."""
    keras.utils.set_random_seed(1)
    return randomize_batchnorm(ee.MultiExitDenseNetCifar(depth=16, growth_rate=4,
                                                         exits=[(1, 1), 2], classes=CLASSES),
                               spread=0.3)


@pytest.fixture(scope="module")
def stages_of():
    """Returns ``split_stages`` with the stages of each model computed once."""
    cache = {}

    def get(model):
        if model.name not in cache:
            cache[model.name] = stage_split.split_stages(model)
        return cache[model.name]

    return get


@pytest.fixture(scope="module")
def fp32_export(tiny_msdnet, tmp_path_factory):
    """The fp32 stages of the tiny MSDNet (multi-input stages)."""
    return staged.export_stages(tiny_msdnet, tmp_path_factory.mktemp("msd_fp32"), "fp32",
                                preprocessing="cifar10")


@pytest.fixture(scope="module")
def densenet_export(tiny_densenet, tmp_path_factory):
    """The fp32 stages of the tiny DenseNet (single-input stages, kerasnets.export.convert)."""
    return staged.export_stages(tiny_densenet, tmp_path_factory.mktemp("dense_fp32"), "fp32",
                                preprocessing="cifar10")


def _stage_outputs(stages, x):
    """Returns the exits' outputs of the Keras stage models run one after another."""
    features, exits = [x], []
    for stage in stages:
        out = stage.model(features if len(features) > 1 else features[0], training=False)
        out = out if isinstance(out, list) else [out]
        exits.append(out[-1].numpy())
        features = out[:-1]
    return exits


# ------------------------------------------------------------------------------------------------
# Builders and registry


def test_registry_has_the_paper_configurations():
    for name in ("densenet_ee_cifar", "msdnet_cifar", "msdnet_cifar_budget"):
        assert get_entry(name).family == "early_exit"
    # MSDNet README: anytime "-nBlocks 10 -stepmode even -step 2 -base 4", budgeted batch
    # "-nBlocks 7 -stepmode lin_grow -step 1 -base 1".
    assert get_entry("msdnet_cifar").fixed_kwargs == {
        "blocks": 10, "step_mode": "even", "step": 2, "base": 4}
    assert get_entry("msdnet_cifar_budget").fixed_kwargs == {
        "blocks": 7, "step_mode": "lin_grow", "step": 1, "base": 1}


def test_msdnet_schedule_follows_the_official_rules():
    assert ee.msdnet_block_layers(10, "even", 2, 4) == (4, 2, 2, 2, 2, 2, 2, 2, 2, 2)
    assert ee.msdnet_block_layers(7, "lin_grow", 1, 1) == (1, 2, 3, 4, 5, 6, 7)
    plan = ee.msdnet_plan(10, "even", 2, 4, 3)
    assert len(plan) == 22
    # "prune max": interval ceil(22 / 3) = 8, so layers 1-8 keep 3 scales, 9-16 two, 17-22 one;
    # the layers that drop a scale (9 and 17) are followed by a transition.
    assert [r.out_scales for r in plan] == [3] * 8 + [2] * 8 + [1] * 6
    assert [r.layer for r in plan if r.transition] == [9, 17]
    assert [r.in_scales for r in plan][8] == 3 and [r.in_scales for r in plan][16] == 2


@pytest.mark.slow
def test_msdnet_cifar_matches_the_reference_parameter_count():
    """The paper's CIFAR-10 anytime MSDNet (22 layers, 10 exits): 4,839,544 trainable
    parameters in imgclsmob's independent PyTorch port (msdnet22_cifar10)."""
    model = kerasnets.create_model("msdnet_cifar")
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 4_839_544
    assert model.output_shape == [(None, 10)] * 10
    # The first layer: 16, 32, 64 maps at 32x32, 16x16, 8x8 (nChannels 16, grFactor 1-2-4).
    assert [model.get_layer(f"scale{s}_stem_relu").output_shape for s in (1, 2, 3)] == [
        (None, 32, 32, 16), (None, 16, 16, 32), (None, 8, 8, 64)]


def test_multi_exit_densenet_is_densenet_cifar_plus_heads(tiny_densenet, images):
    """The last exit is DenseNetCifar itself: its weights, loaded by name into a DenseNetCifar of
    the same arguments, give the same outputs; the rest are the early heads."""
    plain = kerasnets.DenseNetCifar(depth=16, growth_rate=4, classes=CLASSES)
    for layer in plain.layers:
        if layer.weights:
            layer.set_weights(tiny_densenet.get_layer(layer.name).get_weights())
    x = images[0][:8]
    np.testing.assert_allclose(plain(x, training=False).numpy(),
                               tiny_densenet(x, training=False)[-1].numpy(), atol=1e-6)
    assert tiny_densenet.output_names == ["exit1_predictions", "exit2_predictions", "predictions"]
    heads = tiny_densenet.count_params() - plain.count_params()
    channels = [tiny_densenet.get_layer(n).input_shape[-1]
                for n in ("exit1_bn", "exit2_bn")]
    assert heads == sum(4 * c + c * CLASSES + CLASSES for c in channels)  # BN + dense


def test_msdnet_preprocessing_inside_matches_data_preprocess(tiny_msdnet, images):
    inside = ee.MSDNetCifar(blocks=3, step=1, base=1, growth_rate=2, stem_channels=4,
                            classifier_channels=8, classes=CLASSES, include_preprocessing=True)
    for layer in tiny_msdnet.layers:
        if layer.weights:
            inside.get_layer(layer.name).set_weights(layer.get_weights())
    raw = data.load_image_folder(data.embedded_dataset("test"), 32, per_class=1,
                                 progress=False).images.astype("float32")
    expected = tiny_msdnet(data.preprocess(raw, "cifar10"), training=False)
    got = inside(raw, training=False)
    for a, b in zip(expected, got):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_models_are_pure_keras_layers_and_round_trip_the_keras_format(
        tiny_msdnet, tiny_densenet, images, tmp_path):
    x = images[0][:4]
    for model in (tiny_msdnet, tiny_densenet):
        kinds = {type(layer).__name__ for layer in model.layers}
        assert not kinds & {"TFOpLambda", "SlicingOpLambda", "Lambda"}
        path = tmp_path / f"{model.name}.keras"
        model.save(str(path))
        loaded = keras.models.load_model(str(path), compile=False)
        for got, expected in zip(loaded(x, training=False), model(x, training=False)):
            np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"step_mode": "grow"}, "step_mode"),
    ({"base": 1, "step": 2}, "base"),
    ({"growth_rate": 3, "scales": ((1, 1), (1, 1))}, "even"),
    ({"scales": ((1, 1), (2,))}, "scales"),
    ({"reduction": 0}, "reduction"),
    ({"blocks": 0}, "blocks"),
])
def test_msdnet_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ee.MSDNetCifar(**kwargs)


@pytest.mark.parametrize("exits, message", [
    ((3,), "always the final exit"),
    ((4,), "block in 1..3"),
    (((1, 7),), "block in 1..3"),
    ((1, 1), "each once"),
    ((), "at least one"),
    ("1", "list of early exit points"),
])
def test_multi_exit_densenet_rejects_bad_exits(exits, message):
    with pytest.raises(ValueError, match=message):
        ee.MultiExitDenseNetCifar(depth=16, growth_rate=4, exits=exits)


# ------------------------------------------------------------------------------------------------
# Stages


@pytest.mark.parametrize("which", ["tiny_msdnet", "tiny_densenet"])
def test_stages_compose_to_the_full_model(which, request, images, stages_of):
    model = request.getfixturevalue(which)
    stages = stages_of(model)
    assert len(stages) == len(model.outputs)
    x = images[0][:6]
    for got, expected in zip(_stage_outputs(stages, x), model(x, training=False)):
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)
    # Every layer runs in exactly one stage; the stage MACs add up to the model's.
    names = [n for s in stages for n in s.layer_names]
    assert sorted(names) == sorted(l.name for l in model.layers
                                   if not isinstance(l, keras.layers.InputLayer))
    assert sum(stage_split.stage_macs(model)) == profile(model).macs
    # Stage k reads exactly what stage k-1 passes on.
    for before, after in zip(stages, stages[1:]):
        assert before.feature_names == after.input_names


def test_msdnet_stage_one_computes_only_what_exit_one_needs(tiny_msdnet, stages_of):
    """Exit 1 reads the coarsest scale; the finest-scale maps of layer 1 are only needed by the
    next block, so they are computed in stage 2."""
    first, second = stages_of(tiny_msdnet)[:2]
    assert "layer1_scale3_concat" in first.layer_names
    assert "layer1_scale1_concat" not in first.layer_names
    assert "layer1_scale1_concat" in second.layer_names


def test_split_stages_rejects_a_single_exit_model():
    with pytest.raises(ValueError, match="one output per exit"):
        stage_split.split_stages(kerasnets.DenseNetCifar(depth=10, growth_rate=2))


# ------------------------------------------------------------------------------------------------
# Joint training


def test_joint_loss_weights():
    assert joint.joint_loss_weights(3) == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(joint.joint_loss_weights(3, "linear"), [0.5, 1.0, 1.5])
    with pytest.raises(ValueError, match="kind"):
        joint.joint_loss_weights(3, "square")


def test_joint_loss_is_the_weighted_sum_of_exit_cross_entropies(tiny_densenet, images):
    x, y = images[0][:16], images[1][:16]
    weights = [0.2, 0.0, 1.5]
    joint.compile_joint(tiny_densenet, keras.optimizers.SGD(0.0), loss_weights=weights)
    # One label array serves every exit (Keras gives it to each output).
    loss = tiny_densenet.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)["loss"]
    outputs = tiny_densenet.predict(x, verbose=0)
    expected = sum(w * np.mean(-np.log(p[np.arange(len(y)), y])) for w, p in zip(weights, outputs))
    np.testing.assert_allclose(loss, expected, rtol=1e-4)
    with pytest.raises(ValueError, match="loss_weights"):
        joint.compile_joint(tiny_densenet, "sgd", loss_weights=[1.0, 1.0])


# ------------------------------------------------------------------------------------------------
# The policy and its calibration


def test_exit_decisions_follow_the_thresholds():
    probs = [np.array([[0.9, 0.1], [0.6, 0.4], [1.0, 0.0]]),
             np.array([[0.2, 0.8], [0.3, 0.7], [0.5, 0.5]]),
             np.array([[0.4, 0.6], [0.45, 0.55], [0.0, 1.0]])]
    exits, predictions, confidence = policy.exit_decisions(probs, [0.8, 0.7])
    assert exits.tolist() == [0, 1, 0] and predictions.tolist() == [0, 1, 0]
    np.testing.assert_allclose(confidence, [0.9, 0.7, 1.0])
    # 1.0 never exits early, even on a softmax that rounded to exactly 1.0.
    exits, predictions, _ = policy.exit_decisions(probs, 1.0)
    assert exits.tolist() == [2, 2, 2] and predictions.tolist() == [1, 1, 1]
    exits, predictions, _ = policy.exit_decisions(probs, 0.0)
    assert exits.tolist() == [0, 0, 0] and predictions.tolist() == [0, 0, 0]


@pytest.mark.parametrize("thresholds, message", [
    (-0.1, r"\[0, 1\]"), (1.5, r"\[0, 1\]"), (float("nan"), r"\[0, 1\]"),
    ([0.5, 1.01], r"\[0, 1\]"), ([0.5], "one value per early exit: 2"),
    ([0.5, 0.5, 0.5], "one value per early exit: 2"), ("0.5", "a number in"), (True, "a number in"),
])
def test_bad_thresholds_are_rejected(thresholds, message):
    with pytest.raises(ValueError, match=message):
        policy.check_thresholds(thresholds, 3)


def _synthetic_exits(n, seed):
    """Returns per-exit probabilities (3 exits, 3 classes) whose later exits are more accurate,
    and the labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    probs = []
    for strength in (1.0, 2.0, 3.0):
        logits = rng.normal(0, 1.0, (n, 3))
        logits[np.arange(n), labels] += strength * rng.uniform(0, 2, n)
        probs.append(policy.softmax(logits))
    return probs, labels


def test_calibration_meets_the_budget_and_beats_every_shared_threshold():
    probs, labels = _synthetic_exits(40, seed=3)
    costs = [2.0, 3.0, 5.0]
    budget = 5.5
    calibration = policy.calibrate_thresholds(probs, labels, costs, budget)
    # Recomputed here, independently of simulate_exits.
    total = 0.0
    correct = 0
    for i in range(len(labels)):
        for k in range(3):
            threshold = calibration.thresholds[k] if k < 2 else None
            if threshold is None or (threshold < 1 and probs[k][i].max() >= threshold):
                total += sum(costs[:k + 1])
                correct += int(probs[k][i].argmax() == labels[i])
                break
    assert total / len(labels) <= budget
    assert calibration.held_out.accuracy == pytest.approx(correct / len(labels))
    # Brute force over every shared threshold that changes a decision.
    best = 0.0
    candidates = np.unique(np.concatenate([p.max(axis=1) for p in probs[:2]] + [[0.0, 1.0]]))
    for t in candidates:
        result = policy.simulate_exits(probs, labels, float(t), costs)
        if result.average_cost <= budget:
            best = max(best, result.accuracy)
    assert calibration.held_out.accuracy >= best


def test_calibration_with_the_whole_budget_is_at_least_as_accurate_as_any_single_exit_rule():
    probs, labels = _synthetic_exits(60, seed=4)
    calibration = policy.calibrate_thresholds(probs, labels, [1, 1, 1], 3.0)
    first, last = (np.mean(p.argmax(axis=1) == labels) for p in (probs[0], probs[-1]))
    assert calibration.held_out.accuracy >= max(first, last)


def test_calibration_rejects_an_impossible_budget():
    probs, labels = _synthetic_exits(10, seed=5)
    with pytest.raises(ValueError, match="below the cost of the first stage"):
        policy.calibrate_thresholds(probs, labels, [2.0, 1.0, 1.0], 1.5)
    with pytest.raises(ValueError, match="stage_costs"):
        policy.calibrate_thresholds(probs, labels, [2.0, 1.0], 3.0)


# ------------------------------------------------------------------------------------------------
# TFLite stages and the LiteRT runtime


def test_fp32_stages_reproduce_the_keras_exits(tiny_msdnet, fp32_export, images):
    runtime = staged.StagedRuntime(fp32_export)
    x = images[0]
    keras_probs = tiny_msdnet.predict(x, verbose=0)
    probs, seconds = runtime.profile(x)
    assert seconds.shape == (len(x), 3) and (seconds > 0).all()
    for got, expected in zip(probs, keras_probs):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    # Threshold 1.0: every image runs to the last exit and gets the Keras last exit's class.
    predictions, exits, _ = runtime.evaluate(x, 1.0)
    assert (exits == 2).all()
    assert (predictions == keras_probs[-1].argmax(axis=1)).all()
    # Threshold 0: every image leaves at the first exit, with its class.
    predictions, exits, _ = runtime.evaluate(x, [0.0, 0.0])
    assert (exits == 0).all()
    assert (predictions == keras_probs[0].argmax(axis=1)).all()
    # In between: the runtime stops where the NumPy policy says.
    expected_exits, expected_predictions, _ = policy.exit_decisions(keras_probs, [0.3, 0.25])
    predictions, exits, _ = runtime.evaluate(x, [0.3, 0.25])
    assert exits.tolist() == expected_exits.tolist()
    assert predictions.tolist() == expected_predictions.tolist()


def test_single_input_stages_match_keras(tiny_densenet, densenet_export, images):
    manifest = staged.load_manifest(densenet_export)
    # One input per stage (its name is the converter's signature name).
    assert [len(s["inputs"]) for s in manifest["stages"]] == [1] * 3
    assert [s["macs"] for s in manifest["stages"]] == stage_split.stage_macs(tiny_densenet)
    probs, _ = staged.StagedRuntime(densenet_export).profile(images[0][:8])
    for got, expected in zip(probs, tiny_densenet.predict(images[0][:8], verbose=0)):
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_calibrated_thresholds_meet_a_mac_budget_on_held_out_images(fp32_export, images):
    runtime = staged.StagedRuntime(fp32_export)
    x, y = images
    probs, _ = runtime.profile(x[::2])
    budget = 0.5 * sum(runtime.macs)
    calibration = policy.calibrate_thresholds(probs, y[::2], runtime.macs, budget)
    assert calibration.held_out.average_cost <= budget
    _, exits, _ = runtime.evaluate(x[::2], calibration.thresholds)
    assert np.mean(np.cumsum(runtime.macs)[exits]) <= budget


def test_stage_files_from_elsewhere_are_rejected(fp32_export, densenet_export, tmp_path):
    msd = [fp32_export.parent / f"stage{k}.tflite" for k in (1, 2, 3)]
    dense = [densenet_export.parent / f"stage{k}.tflite" for k in (1, 2, 3)]
    with pytest.raises(ValueError, match="does not belong to model 'msdnet3_b3'"):
        staged.StagedRuntime(fp32_export, stage_files=[msd[0], dense[1], msd[2]])
    with pytest.raises(ValueError, match="is stage 2 of 'msdnet3_b3', given as stage 1"):
        staged.StagedRuntime(fp32_export, stage_files=[msd[1], msd[0], msd[2]])
    with pytest.raises(ValueError, match="must list the 3 stages"):
        staged.StagedRuntime(fp32_export, stage_files=msd[:2])
    modified = tmp_path / "stage3.tflite"
    modified.write_bytes(msd[2].read_bytes() + b"\0")
    with pytest.raises(ValueError, match="was modified"):
        staged.StagedRuntime(fp32_export, stage_files=[msd[0], msd[1], modified])
    foreign = tmp_path / "plain.tflite"
    foreign.write_bytes(b"\0" * 16)
    with pytest.raises(ValueError, match="not a TFLite model"):
        staged.StagedRuntime(fp32_export, stage_files=[foreign, msd[1], msd[2]])
    not_a_manifest = tmp_path / "other.json"
    not_a_manifest.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a kerasnets early-exit manifest"):
        staged.StagedRuntime(not_a_manifest)


def test_runtime_rejects_bad_thresholds_and_images(fp32_export, images):
    runtime = staged.StagedRuntime(fp32_export)
    with pytest.raises(ValueError, match="one value per early exit: 2"):
        runtime.run(images[0][0], [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        runtime.run(images[0][0], 2.0)
    with pytest.raises(ValueError, match="shape"):
        runtime.run(images[0][0][:16], 0.5)


def test_export_rejects_bad_arguments(tiny_msdnet, tmp_path):
    with pytest.raises(ValueError, match="precision"):
        staged.export_stages(tiny_msdnet, tmp_path, "fp16", preprocessing="cifar10")
    with pytest.raises(ValueError, match="representative_images"):
        staged.export_stages(tiny_msdnet, tmp_path, "int8", preprocessing="cifar10")
    with pytest.raises(ValueError, match="preprocessing"):
        staged.export_stages(tiny_msdnet, tmp_path, "fp32", preprocessing="imagenet")


@pytest.mark.slow
def _confident_msdnet():
    """Returns a tiny 3-exit MSDNet whose random exits are not near-uniform (logits spread), so
    that tests can compare the classes of its int8 forms."""
    keras.utils.set_random_seed(0)
    model = randomize_batchnorm(ee.MSDNetCifar(blocks=3, step=1, base=1, growth_rate=2,
                                               stem_channels=4, classifier_channels=8,
                                               classes=CLASSES), spread=0.3)
    for name in model.output_names:
        kernel, bias = model.get_layer(name).get_weights()
        model.get_layer(name).set_weights([8 * kernel, bias])
    return model


def test_qat_int8_stages_follow_the_qat_model(images, tmp_path):
    """QAT int8 stages: int8 inside every stage, and the staged LiteRT run gives the QAT Keras
    model's outputs (int8 arithmetic vs its fake quantization)."""
    from kerasnets.export.interpreter import inner_tensor_dtypes
    from kerasnets.quantization.qat import quantize_model

    model = _confident_msdnet()
    qat_model = quantize_model(model)
    x, y = images
    # One pass in training mode sets the quantization ranges (the learning rate is 0).
    joint.compile_joint(qat_model, keras.optimizers.SGD(0.0))
    qat_model.fit(x, (y,) * 3, batch_size=len(x), epochs=1, verbose=0)
    manifest = staged.export_stages(model, tmp_path, "int8", preprocessing="cifar10",
                                    qat_model=qat_model, representative_images=x)
    for k in (1, 2, 3):
        dtypes = set(inner_tensor_dtypes((tmp_path / f"stage{k}.tflite").read_bytes()).values())
        assert dtypes <= {np.dtype("int8"), np.dtype("int32")}, dtypes
    probs, _ = staged.StagedRuntime(manifest).profile(x)
    clear_images = 0
    for got, want in zip(probs, qat_model.predict(x, verbose=0)):
        # int8 rounding, and the requantization of the features between stages.
        assert np.abs(got - want).max() <= 0.05
        assert np.abs(got - want).mean() <= 0.01
        # Where the top two classes are more than 2 x 0.05 apart, no error allowed above can
        # swap them: the class must be the same.
        top2 = np.sort(want, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 0.1
        assert (got.argmax(1) == want.argmax(1))[clear].all()
        clear_images += clear.sum()
    assert clear_images >= 10


def test_int8_stages_hand_int8_features_on(images, tmp_path):
    """int8 stages pass their features on as int8 tensors, without a DEQUANTIZE in one stage and
    a QUANTIZE in the next (issue 16, item 4): only the image input and the exits are float. The
    staged run gives what the converter's own stages give, chained through float features."""
    from kerasnets.export.convert import convert
    from kerasnets.export.interpreter import load_interpreter

    x, _ = images
    model = _confident_msdnet()
    manifest = staged.export_stages(model, tmp_path, "int8", preprocessing="cifar10",
                                    representative_images=x)
    for k in (1, 2, 3):
        runner = load_interpreter((tmp_path / f"stage{k}.tflite").read_bytes()) \
            .get_signature_runner()
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
        exit_name = f"output_{len(outputs) - 1}"
        assert {np.dtype(d["dtype"]).name for d in inputs.values()} == \
            ({"float32"} if k == 1 else {"int8"})
        assert np.dtype(outputs[exit_name]["dtype"]) == np.float32
        assert {np.dtype(d["dtype"]).name for n, d in outputs.items() if n != exit_name} == \
            ({"int8"} if k < 3 else set())
    # The converter's stages with float inputs and outputs, calibrated as export_stages does.
    features, runners = [x], []
    for stage in stage_split.split_stages(model):
        runners.append(load_interpreter(convert(
            stage.model, "int8", features if len(features) > 1 else features[0]))
            .get_signature_runner())
        out = stage.model.predict(features if len(features) > 1 else features[0], verbose=0)
        features = (out if isinstance(out, list) else [out])[:-1]
    reference = [[] for _ in runners]
    for image in x:
        features = [image[None]]
        for k, runner in enumerate(runners):
            names = sorted(runner.get_input_details())
            out = runner(**dict(zip(names, features)))
            out = [out[f"output_{i}"] for i in range(len(out))]
            reference[k].append(out[-1][0])
            features = out[:-1]
    probs, _ = staged.StagedRuntime(manifest).profile(x)
    # Exit 1 reads the image as before: the same numbers. Later stages requantize some int8
    # features to the scale their concatenation takes with an int8-to-int8 QUANTIZE, where the
    # converter's stages dequantize and quantize in float: the same up to one int8 step of a
    # feature here and there.
    np.testing.assert_array_equal(probs[0], np.array(reference[0]))
    for got, want in zip(probs[1:], reference[1:]):
        want = np.array(want)
        assert np.abs(got - want).max() <= 0.02
        assert np.abs(got - want).mean() <= 2e-3
        top2 = np.sort(want, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 0.04
        assert clear.sum() >= 10
        assert (got.argmax(1) == want.argmax(1))[clear].all()


def test_runtime_refuses_stages_whose_features_do_not_connect():
    """The runtime hands stage k's int8 features to stage k+1 as they are: a reader with another
    dtype or quantization is refused, one with the writer's scale to float32 rounding is not."""
    def feature(dtype, quantization=(0.0, 0)):
        return {"dtype": dtype, "quantization": quantization}

    exit_output = feature(np.float32)
    writer = (None, [feature(np.float32)], [feature(np.int8, (0.05, -128)), exit_output])
    paths = ["stage1.tflite", "stage2.tflite"]
    for read, refused in ((feature(np.int8, (0.05 * (1 + 1e-7), -128)), False),
                          (feature(np.int8, (0.06, -128)), True),
                          (feature(np.int8, (0.05, -127)), True),
                          (feature(np.float32), True)):
        stages = [writer, (None, [read], [exit_output])]
        if refused:
            with pytest.raises(ValueError, match="'stage2.tflite' reads a .* where stage 1 "
                                                 "writes int8 quantized"):
                staged._check_hand_on(stages, paths)
        else:
            staged._check_hand_on(stages, paths)


def test_cli_evaluates_stages_on_an_image_folder(fp32_export, cifar_dir, capsys):
    assert early_exit_cli.main(["--stages", str(fp32_export), "--data", str(cifar_dir / "test"),
                        "--thresholds", "0.2", "--per-class", "1", "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 10 and sum(result["exit_counts"]) == 10
    assert early_exit_cli.main(["--stages", str(fp32_export), "--data", str(cifar_dir / "test"),
                        "--thresholds", "0.2", "0.3", "0.4", "--no-progress"]) == 2


def test_eval_script_sums_each_images_stage_times_up_to_its_exit():
    from benchmarks import early_exit_eval

    probs = [np.array([[0.9, 0.1], [0.5, 0.5]]), np.array([[0.2, 0.8], [0.4, 0.6]])]
    seconds = np.array([[1.0, 10.0], [2.0, 20.0]])
    np.testing.assert_allclose(early_exit_eval.measured_policy_seconds(probs, seconds, 0.8),
                               [1.0, 22.0])
    np.testing.assert_allclose(early_exit_eval.measured_policy_seconds(probs, seconds, 1.0),
                               [11.0, 22.0])


def test_eval_script_trains_every_exit_through_fit(images):
    """The evaluation script trains through kerasnets.training.fit: one cross-entropy per exit,
    weighted 1 (MSDNet's uniform joint loss), so the loss is the sum of the exits' losses."""
    from benchmarks import early_exit_eval

    image_set = data.load_image_folder(data.embedded_dataset("train"), 32, per_class=2,
                                       progress=False)
    kwargs = {"blocks": 3, "step": 1, "base": 1, "growth_rate": 2, "stem_channels": 4,
              "classifier_channels": 8}
    result = early_exit_eval.train_joint(
        lambda: early_exit_eval.build_model("msdnet", kwargs, CLASSES), image_set, "cifar10",
        epochs=1, learning_rate=1e-3, batch_size=10, seed=0)
    names = result.model.output_names
    assert len(names) == 3
    history = result.history
    np.testing.assert_allclose(history["loss"][0],
                               sum(history[f"{name}_loss"][0] for name in names), rtol=1e-4)


def test_eval_script_refuses_exits_that_output_logits():
    """Its training loss reads probabilities: logits exits would train on a wrong loss."""
    from benchmarks import early_exit_eval

    with pytest.raises(ValueError, match="softmax"):
        early_exit_eval.build_model("msdnet", {"blocks": 2, "step": 1, "base": 1,
                                               "classifier_activation": None}, CLASSES)
