"""Early-exit models as TFLite stages, and the LiteRT runtime that runs stages until an exit is
confident enough.

``export_stages`` splits a multi-exit Keras model (``kerasnets.export.stage_split``) and
converts each stage with ``kerasnets.export.convert`` (fp32, or int8: post-training or from
a QAT model) into one ``.tflite`` file per stage: stage k takes stage k-1's features and returns
its own features and its exit's output (int8 stages hand the features on as int8 tensors, with
no DEQUANTIZE/QUANTIZE between stages: ``kerasnets.export.int8_forms.int8_interfaces``). Beside the files, ``early_exit.json`` (the manifest) lists
them with their sha256, MACs and tensor names, and the fingerprint of the model they came from;
each file also carries that fingerprint and its stage number in its TFLite metadata
(``kerasnets_early_exit``). ``StagedRuntime`` refuses a stage file that belongs to another model,
another position or another export, and stops at the first exit whose confidence reaches its
threshold (the policy of ``kerasnets.export.exit_policy``).

The command line (``kerasnets early-exit``) evaluates exported stages on an image folder.
"""

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple, Union

import numpy as np
from tqdm import tqdm

from kerasnets import data
from kerasnets.export.convert import check_writable_dir, convert, write_atomic
from kerasnets.export.exit_policy import (
    Thresholds, check_thresholds, exit_outputs_are_probabilities, softmax,
)
from kerasnets.export.int8_forms import add_metadata, read_metadata, same_quantization
from kerasnets.export.interpreter import load_interpreter

# TensorFlow is imported where a Keras model is split, not on import: the command line over
# StagedRuntime answers --help without it.
if TYPE_CHECKING:
    from kerasnets._keras import keras

log = logging.getLogger("kerasnets.early_exit_tflite")

MANIFEST_NAME = "early_exit.json"
MANIFEST_FORMAT = "kerasnets-early-exit"
MANIFEST_VERSION = 1
METADATA_NAME = "kerasnets_early_exit"
STAGE_PRECISIONS = ("fp32", "int8")


def model_fingerprint(model: "keras.Model", precision: str) -> str:
    """Returns the sha256 (hex) of a Keras model's architecture, weights and the export precision:
    the identity a stage file is checked against."""
    digest = hashlib.sha256()
    digest.update(model.to_json().encode())
    for weight in model.weights:
        digest.update(weight.name.encode())
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    digest.update(precision.encode())
    return digest.hexdigest()


def _convert_stage(model, precision, representative_data):
    """Returns ``(tflite bytes, signature input names in the model's input order)`` of one stage
    model."""
    if len(model.inputs) > 1:
        return (convert(model, precision, representative_data),
                [f"input_{i}" for i in range(len(model.inputs))])
    images = None if representative_data is None else representative_data[0]
    tflite_model = convert(model, precision, images)
    signature = load_interpreter(tflite_model).get_signature_list()
    (inputs,) = [s["inputs"] for s in signature.values()]
    return tflite_model, list(inputs)


def _as_list(outputs):
    return outputs if isinstance(outputs, list) else [outputs]


def _check_export_args(model, precision, preprocessing, qat_model, representative_images):
    """Returns the model the stages are cut from (``qat_model`` when given, else ``model``)
    after checking the arguments of ``export_stages``."""
    if precision not in STAGE_PRECISIONS:
        raise ValueError(
            f"`precision` must be one of {STAGE_PRECISIONS}; received precision={precision!r}")
    if preprocessing not in data.PREPROCESSING_MODES:
        raise ValueError(f"`preprocessing` must be one of {data.PREPROCESSING_MODES}; received "
                         f"preprocessing={preprocessing!r}")
    if qat_model is not None and precision != "int8":
        raise ValueError(f"`qat_model` gives an int8 export; received precision={precision!r}")
    if precision == "int8" and (representative_images is None or len(representative_images) == 0):
        raise ValueError("`representative_images` must hold calibration images for int8 export")
    source = qat_model if qat_model is not None else model
    if len(source.outputs) != len(model.outputs):
        raise ValueError(
            f"`qat_model` has {len(source.outputs)} outputs but `model` has "
            f"{len(model.outputs)} exits; pass the QAT model made from `model`"
        )
    return source


def _int8_features(tflite_model, stage, input_names, handed_on):
    """Returns ``(tflite bytes, quantization of each feature output)`` of an int8 stage whose
    feature inputs and outputs are int8 (``int8_forms.int8_interfaces``): each feature input
    takes ``handed_on``, the quantization of the previous stage's matching output, so the int8
    tensors pass from stage to stage as they are."""
    from kerasnets.export.int8_forms import int8_interfaces

    inputs = input_names if stage.index > 0 else []
    outputs = [f"output_{i}" for i in range(len(stage.model.outputs) - 1)]
    tflite_model, quantization = int8_interfaces(
        tflite_model, inputs, outputs, dict(zip(inputs, handed_on)))
    return tflite_model, [quantization[name] for name in outputs]


def _write_stage(stage, tflite_model, input_names, out, identity, macs):
    """Returns the manifest entry of ``stage`` after writing its ``.tflite`` file, stamped with
    ``identity`` (fingerprint, stage number, model name) in its metadata, into ``out``."""
    tflite_model = add_metadata(tflite_model, METADATA_NAME, json.dumps(
        {**identity, "stage": stage.index}).encode())
    path = out / f"stage{stage.index + 1}.tflite"
    write_atomic(path, tflite_model)
    return {
        "file": path.name, "sha256": hashlib.sha256(tflite_model).hexdigest(),
        "macs": macs, "inputs": input_names,
        "outputs": [f"output_{i}" for i in range(len(stage.model.outputs))],
        "input_names": list(stage.input_names), "feature_names": list(stage.feature_names),
        "size_bytes": len(tflite_model),
    }


def export_stages(model: "keras.Model", out_dir: Union[str, Path], precision: str = "fp32", *,
                  preprocessing: str, qat_model: Optional["keras.Model"] = None,
                  representative_images: Optional[np.ndarray] = None,
                  int8_features: bool = True, progress: bool = False) -> Path:
    """Returns the path of the manifest after writing one ``.tflite`` file per stage of ``model``.

    Args:
      model: the float multi-exit Keras model (MACs and exit activations are read from it).
      out_dir: folder for ``stage{k}.tflite`` and ``early_exit.json`` (created if needed).
      precision: ``"fp32"`` or ``"int8"`` (full-integer; float image input and exit outputs).
      preprocessing: the ``kerasnets.data.preprocess`` mode of the model's inputs (recorded so
        that the runtime's users feed what the model expects).
      qat_model: for int8, the QAT model of ``model``
        (``kerasnets.quantization.qat.quantize_model``, after fine-tuning); without it int8 is
        post-training quantization of ``model``.
      representative_images: for int8, preprocessed float32 images ``(n, rows, cols, 3)``:
        stage k is calibrated on the features that stages 1..k-1 (Keras) compute from them.
      int8_features: for int8, hand the features from stage to stage as int8 tensors (default;
        ``kerasnets.export.int8_forms.int8_interfaces``); False keeps the converter's float
        feature inputs and outputs (a DEQUANTIZE at the end of each stage, a QUANTIZE at the
        start of the next).
      progress: show a progress bar over the stages.

    Raises:
      ValueError: bad precision, int8 without representative images, a QAT model that does not
        match ``model``, or a model that cannot be split (see ``split_stages``).
    """
    from kerasnets.export.stage_split import split_stages, stage_macs

    source = _check_export_args(model, precision, preprocessing, qat_model,
                                representative_images)
    out = check_writable_dir(out_dir)
    macs = stage_macs(model)
    stages = split_stages(source)
    fingerprint = model_fingerprint(source, precision)
    identity = {"fingerprint": fingerprint, "stages": len(stages), "model": model.name}
    features = None if precision != "int8" else [
        np.asarray(representative_images, dtype="float32")]
    entries, handed_on = [], []
    for stage in tqdm(stages, desc=f"exporting {precision} stages", disable=not progress,
                      leave=False):
        tflite_model, input_names = _convert_stage(stage.model, precision, features)
        if precision == "int8" and int8_features:
            tflite_model, handed_on = _int8_features(tflite_model, stage, input_names,
                                                      handed_on)
        if precision == "int8" and stage.index < len(stages) - 1:
            # The next stage is calibrated on what this one passes on.
            features = _as_list(stage.model.predict(
                features if len(features) > 1 else features[0], batch_size=64, verbose=0))[:-1]
        entries.append(_write_stage(stage, tflite_model, input_names, out, identity,
                                    macs[stage.index]))
    manifest = {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "model": model.name,
        "fingerprint": fingerprint, "precision": precision, "qat": qat_model is not None,
        "features": "int8" if precision == "int8" and int8_features else "float32",
        "classes": int(model.outputs[-1].shape[-1]),
        "input_shape": list(model.input_shape[1:]), "preprocessing": preprocessing,
        "probabilities": exit_outputs_are_probabilities(model), "stages": entries,
    }
    path = write_atomic(out / MANIFEST_NAME, (json.dumps(manifest, indent=2) + "\n").encode())
    log.info("wrote %d %s stages of %s to %s", len(stages), precision, model.name, out)
    return path


def load_manifest(path: Union[str, Path]) -> dict:
    """Returns the manifest dict of exported stages (``path``: the JSON file or its folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read the early-exit manifest {str(path)!r}: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{str(path)!r} is not a kerasnets early-exit manifest ({MANIFEST_NAME} "
                         "written by export_stages)")
    if manifest.get("version") != MANIFEST_VERSION:
        raise ValueError(f"{str(path)!r} has manifest version {manifest.get('version')!r}; this "
                         f"kerasnets reads version {MANIFEST_VERSION}")
    manifest["_dir"] = str(path.parent)
    return manifest


def check_stage_file(tflite_model: bytes, manifest: dict, index: int,
                     path: Union[str, Path] = "<bytes>") -> None:
    """Returns nothing; raises ``ValueError`` unless ``tflite_model`` is stage ``index`` (0-based)
    of the export described by ``manifest``."""
    try:
        raw = read_metadata(tflite_model, METADATA_NAME)
    except ValueError as err:
        raise ValueError(f"stage file {str(path)!r} is {err}") from err
    if raw is None:
        raise ValueError(
            f"stage file {str(path)!r} is not a kerasnets early-exit stage (it has no "
            f"{METADATA_NAME!r} metadata); export stages with export_stages()"
        )
    meta = json.loads(raw.decode())
    model, fingerprint = manifest["model"], manifest["fingerprint"]
    if meta.get("fingerprint") != fingerprint:
        raise ValueError(
            f"stage file {str(path)!r} does not belong to model {model!r} (fingerprint "
            f"{fingerprint[:12]}): it is stage {meta.get('stage', -1) + 1} of model "
            f"{meta.get('model')!r} (fingerprint {str(meta.get('fingerprint'))[:12]})"
        )
    if meta.get("stage") != index:
        raise ValueError(
            f"stage file {str(path)!r} is stage {meta.get('stage') + 1} of {model!r}, given as "
            f"stage {index + 1}"
        )
    digest = hashlib.sha256(bytes(tflite_model)).hexdigest()
    expected = manifest["stages"][index]["sha256"]
    if digest != expected:
        raise ValueError(
            f"stage file {str(path)!r} (sha256 {digest[:12]}) is not the file exported as stage "
            f"{index + 1} of {model!r} (sha256 {expected[:12]}): it was modified; export again"
        )


def _load_stage(path, manifest, index, num_threads):
    """Returns ``(interpreter, input details, output details)`` (the signature runner's, in the
    manifest's order) of stage ``index`` read from ``path``, after checking it is the file
    exported as that stage."""
    try:
        tflite_model = Path(path).read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read stage file {str(path)!r}: {err}") from err
    check_stage_file(tflite_model, manifest, index, path)
    interpreter = load_interpreter(tflite_model, num_threads)
    runner = interpreter.get_signature_runner()
    inputs, outputs = runner.get_input_details(), runner.get_output_details()
    entry = manifest["stages"][index]
    return (interpreter, [inputs[name] for name in entry["inputs"]],
            [outputs[name] for name in entry["outputs"]])


def _check_hand_on(stages, paths):
    """Raises ``ValueError`` unless each stage's feature outputs are what the next stage reads:
    same dtype and, for int8, the same quantization (``int8_forms.same_quantization``: the
    runtime hands the arrays on as they are)."""
    for k in range(len(stages) - 1):
        written, read = stages[k][2][:-1], stages[k + 1][1]
        for out, inp in zip(written, read):
            if out["dtype"] != inp["dtype"] or (
                    np.issubdtype(out["dtype"], np.integer)
                    and not same_quantization(out["quantization"], inp["quantization"])):
                raise ValueError(
                    f"stage file {str(paths[k + 1])!r} reads a {np.dtype(inp['dtype']).name} "
                    f"feature quantized {inp['quantization']} where stage {k + 1} writes "
                    f"{np.dtype(out['dtype']).name} quantized {out['quantization']}; export "
                    "the stages again")


@dataclasses.dataclass(frozen=True)
class ExitRun:
    """One image through ``StagedRuntime.run``: the class, the exit it left at (0-based), that
    exit's confidence and probabilities, and the seconds spent in the stages it ran."""

    prediction: int
    exit_index: int
    confidence: float
    probabilities: np.ndarray
    seconds: float


class StagedRuntime:
    """LiteRT interpreters for the stages of an export, run one after another until an exit is
    confident enough.

    Args:
      manifest: the manifest path (or its folder) written by ``export_stages``.
      stage_files: optional paths of the stage files, in order (default: the manifest's files
        beside it); each must be the file exported as that stage.
      num_threads: CPU threads of each interpreter.

    Raises:
      ValueError: an unreadable manifest, a wrong number of stage files, or a stage file that
        does not belong to the model, is at the wrong position or was modified.
    """

    def __init__(self, manifest: Union[str, Path],
                 stage_files: Optional[Sequence[Union[str, Path]]] = None, num_threads: int = 1):
        from kerasnets.models.convention import check_positive_int

        self.manifest = load_manifest(manifest)
        entries = self.manifest["stages"]
        if stage_files is None:
            stage_files = [Path(self.manifest["_dir"]) / e["file"] for e in entries]
        stage_files = list(stage_files)
        if len(stage_files) != len(entries):
            raise ValueError(
                f"`stage_files` must list the {len(entries)} stages of "
                f"{self.manifest['model']!r} in order; received {len(stage_files)} files"
            )
        check_positive_int("num_threads", num_threads)
        stages = [_load_stage(path, self.manifest, index, num_threads)
                  for index, path in enumerate(stage_files)]
        _check_hand_on(stages, stage_files)
        self._stages = [(interpreter, [d["index"] for d in inputs], [d["index"] for d in outputs])
                        for interpreter, inputs, outputs in stages]
        self.num_exits = len(self._stages)
        self.macs = [int(e["macs"]) for e in entries]
        self._probabilities = bool(self.manifest["probabilities"])
        self.input_shape = tuple(self.manifest["input_shape"])

    def _image(self, image):
        x = np.asarray(image, dtype="float32")
        if x.shape == self.input_shape:
            x = x[None]
        if x.shape != (1,) + self.input_shape:
            raise ValueError(f"`image` must have shape {self.input_shape} (or with a batch of 1); "
                             f"received shape {np.shape(image)}")
        return x

    def _run_stage(self, index, features):
        """Returns ``(outputs, seconds)`` of stage ``index`` on its input ``features``."""
        interpreter, inputs, outputs = self._stages[index]
        start = time.perf_counter()
        for tensor, value in zip(inputs, features):
            interpreter.set_tensor(tensor, value)
        interpreter.invoke()
        result = [interpreter.get_tensor(tensor) for tensor in outputs]
        return result, time.perf_counter() - start

    def _probs(self, output):
        y = output[0].astype("float64")
        return y if self._probabilities else softmax(y)

    def run(self, image: np.ndarray, thresholds: Thresholds) -> ExitRun:
        """Returns the ``ExitRun`` of one preprocessed image: stages run until the max softmax
        of stage k's exit reaches ``thresholds[k]`` (one per early exit, or one for all; 1.0
        never exits early), or the last exit answers."""
        thresholds = check_thresholds(thresholds, self.num_exits) + (0.0,)
        features = [self._image(image)]
        seconds = 0.0
        index = 0
        while True:
            outputs, elapsed = self._run_stage(index, features)
            seconds += elapsed
            probs = self._probs(outputs[-1])
            confidence = float(probs.max())
            # The 0 appended for the last exit: it always answers.
            if thresholds[index] < 1.0 and confidence >= thresholds[index]:
                return ExitRun(int(probs.argmax()), index, confidence, probs, seconds)
            features = outputs[:-1]
            index += 1

    def run_all(self, image: np.ndarray) -> Tuple[List[np.ndarray], List[float]]:
        """Returns ``(probabilities per exit, seconds per stage)`` of one image through every
        stage (anytime prediction: every exit's answer)."""
        features = [self._image(image)]
        probabilities, seconds = [], []
        for index in range(self.num_exits):
            outputs, elapsed = self._run_stage(index, features)
            probabilities.append(self._probs(outputs[-1]))
            seconds.append(elapsed)
            features = outputs[:-1]
        return probabilities, seconds

    def profile(self, images: np.ndarray,
                progress: bool = False) -> Tuple[List[np.ndarray], np.ndarray]:
        """Returns ``(probabilities, seconds)``: per exit an array ``(n, classes)`` of the
        images' probabilities, and an array ``(n, stages)`` of each stage's measured time."""
        probabilities, seconds = [], []
        for image in tqdm(images, desc="staged TFLite", unit="img", disable=not progress,
                          leave=False):
            p, s = self.run_all(image)
            probabilities.append(p)
            seconds.append(s)
        return [np.stack([p[k] for p in probabilities]) for k in range(self.num_exits)], \
            np.asarray(seconds)

    def evaluate(self, images: np.ndarray, thresholds: Thresholds,
                 progress: bool = False) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns ``(predictions, exit indices, seconds)`` arrays (n,) of the early-exit
        policy run for real, image by image."""
        runs = [self.run(image, thresholds) for image in tqdm(
            images, desc="early exit", unit="img", disable=not progress, leave=False)]
        return (np.array([r.prediction for r in runs]), np.array([r.exit_index for r in runs]),
                np.array([r.seconds for r in runs]))
