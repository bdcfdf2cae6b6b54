"""``kerasnets predict MODEL.tflite IMAGE...``: the top-k classes of images, with their
probabilities, by a model ``kerasnets convert`` wrote.

The class names, input size and preprocessing come from the model's report, the ``.json`` file
beside it with the same name (``kerasnets.workflow.report_path``); each image is decoded,
resized and preprocessed as the converter's evaluation did, then run by LiteRT.

    kerasnets predict out/v3s/mobilenet_v3_small_int8_qat.tflite cat.jpg dog.png --top 3
"""

import argparse
import json
import logging
from pathlib import Path

from kerasnets.cli.common import (
    EXIT_OK, add_verbose_argument, call_reporting_errors, configure_logging,
)

log = logging.getLogger("kerasnets.predict")

# What predict reads from a report, and the type each must have.
REPORT_FIELDS = {"class_names": list, "input_size": int, "preprocessing": str}


def read_report(model_path, report_path=None):
    """Returns the converter report (dict) of ``model_path``: ``report_path``, by default the
    ``.json`` beside the model with its name. Raises ``ValueError`` if it is missing, not JSON,
    or lacks ``class_names``, ``input_size`` or ``preprocessing``."""
    from kerasnets.workflow import report_path as default_report_path

    path = Path(report_path) if report_path is not None else default_report_path(model_path)
    if not path.is_file():
        raise ValueError(
            f"no report {str(path)!r} for model {str(model_path)!r}: predict reads the class "
            "names and preprocessing from the .json that kerasnets convert writes beside the "
            ".tflite; pass --report PATH if it is elsewhere")
    try:
        report = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"report {str(path)!r} is not a readable JSON file: {err}") from err
    for field, kind in REPORT_FIELDS.items():
        if not isinstance(report, dict) or not isinstance(report.get(field), kind):
            raise ValueError(f"report {str(path)!r} has no {field!r} ({kind.__name__}); is it "
                             "a kerasnets convert report?")
    return report


def load_images(paths, image_size):
    """Returns the ``uint8`` array ``(len(paths), image_size, image_size, 3)`` of image files,
    resized as ``kerasnets.data.load_image_folder`` does. Raises ``ValueError`` naming the first
    file that cannot be read or decoded."""
    import tensorflow as tf

    from kerasnets import data

    images = []
    for path in paths:
        try:
            images.append(data.decode_image(Path(path).read_bytes()))
        except OSError as err:
            raise ValueError(f"image {str(path)!r} cannot be read: {err.strerror}") from err
        except tf.errors.InvalidArgumentError as err:
            raise ValueError(f"image {str(path)!r} is not a decodable image (JPEG, PNG, BMP or "
                             "GIF)") from err
    return data.resize_images(images, image_size)


def predict_files(model_path, image_paths, top=5, report_path=None):
    """Returns one dict per image: ``{"image": path, "top": [{"class": name, "probability": p},
    ...]}``, the ``top`` most probable classes of the model's output, highest first.

    ``p`` is the model's output (softmax probabilities for kerasnets classifiers), float. Raises
    ``ValueError`` for a missing model or report, an unreadable image, ``top`` < 1, or a model
    whose output does not have one value per class of the report.
    """
    from kerasnets import data
    from kerasnets.export.interpreter import tflite_predict

    if not isinstance(top, int) or top < 1:
        raise ValueError(f"--top must be an integer >= 1; received --top {top!r}")
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ValueError(f"model {str(model_path)!r} does not exist")
    report = read_report(model_path, report_path)
    images = load_images(image_paths, report["input_size"])
    try:
        outputs = tflite_predict(model_path.read_bytes(),
                                 data.preprocess(images, report["preprocessing"]))
    except RuntimeError as err:  # LiteRT's error for bytes that are not a .tflite model
        raise ValueError(f"model {str(model_path)!r} cannot be run by LiteRT: {err}") from err
    names = report["class_names"]
    outputs = outputs.reshape(len(outputs), -1)
    if outputs.shape[1] != len(names):
        raise ValueError(f"model {str(model_path)!r} has {outputs.shape[1]} outputs but its "
                         f"report names {len(names)} classes; is the report the model's?")
    results = []
    for path, row in zip(image_paths, outputs):
        best = row.argsort()[::-1][:top]
        results.append({"image": str(path), "top": [
            {"class": names[i], "probability": float(row[i])} for i in best]})
    return results


def format_lines(results):
    """Returns the text ``kerasnets predict`` prints: per image, ``IMAGE: class 0.812, ...``."""
    return "\n".join(
        f"{result['image']}: " + ", ".join(f"{top['class']} {top['probability']:.3f}"
                                           for top in result["top"])
        for result in results)


def build_parser(prog="kerasnets predict"):
    """Returns the ``argparse`` parser of ``kerasnets predict``."""
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 on success, 2 on bad input (a missing report, an unreadable "
               "image, ...), 1 on other errors.")
    parser.add_argument("model", type=Path, help=".tflite model written by kerasnets convert")
    parser.add_argument("images", nargs="+", type=Path, help="image files (JPEG, PNG, BMP, GIF)")
    parser.add_argument("--top", "-k", type=int, default=5,
                        help="classes shown per image (default: %(default)s)")
    parser.add_argument("--report", type=Path, help="the model's converter report (default: "
                        "the .json beside MODEL with its name)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per image on stdout instead of text")
    add_verbose_argument(parser)
    return parser


def main(argv=None, prog="kerasnets predict"):
    """Returns the exit status of ``kerasnets predict`` after printing the predictions."""
    args = build_parser(prog).parse_args(argv)
    configure_logging(verbose=args.verbose)
    status, results = call_reporting_errors(log, predict_files, args.model, args.images,
                                            args.top, args.report)
    if status != EXIT_OK:
        return status
    print("\n".join(json.dumps(r) for r in results) if args.json else format_lines(results))
    return EXIT_OK
