"""Post-training int8 agreement with the float model, form by form: does kerasnets' int8
rewriting cost agreement?

Converts one float model with post-training quantization (calibration on the embedded training
images) and runs on the embedded test images, in LiteRT: the plain TFLite converter's int8 model
(``kerasnets.export.convert.tflite_converter``) and ``kerasnets.export.int8_forms.postprocess_tflite`` of
it in the fused hard-swish form, the single-partition form without constant folding, and the
default (single partition, constant folding). Prints each one's top-1 and its agreement with the
float Keras model, for each calibration size.

    python benchmarks/int8_forms_agreement.py                       # the shipped weights
    python benchmarks/int8_forms_agreement.py --calibration 200 1000
"""

import argparse
import sys


def main(argv=None):
    """Prints the table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mobilenet_v3_small", help="registered model with "
                        "shipped weights='cifar10' (default: %(default)s)")
    parser.add_argument("--calibration", type=int, nargs="+", default=[200, 1000],
                        help="calibration image counts (default: %(default)s)")
    args = parser.parse_args(argv)
    if min(args.calibration) < 1:
        parser.error(f"--calibration counts must be >= 1; received {args.calibration}")
    import kerasnets
    from kerasnets import data, export, workflow
    from kerasnets.bench.local import host_cpu_line
    from kerasnets.export.convert import tflite_converter
    from kerasnets.export.int8_forms import postprocess_tflite
    from kerasnets.models.registry import get_entry

    model = kerasnets.create_model(args.model, weights="cifar10")
    size = model.input_shape[1]
    mode = data.preprocessing_mode(get_entry(args.model))
    train = data.load_image_folder(data.embedded_dataset("train"), size, progress=False)
    test = data.load_image_folder(data.embedded_dataset("test"), size, progress=False)
    inputs = data.preprocess(test.images, mode)
    reference = model.predict(inputs, batch_size=250, verbose=0)
    print(f"{args.model} {size}x{size}, weights='cifar10', {len(test)} embedded test images; "
          f"float Keras top-1 {100 * export.accuracy(reference, test.labels):.1f} %\n"
          f"{host_cpu_line()}\n")
    print("| calibration images | int8 form | top-1 % | agrees with float % |")
    print("|---|---|---|---|")
    for count in args.calibration:
        calibration = data.preprocess(workflow.pick_calibration_images(train, count, 0), mode)
        plain = tflite_converter(model, "int8", calibration).convert()
        forms = (("plain TFLite converter", plain),
                 ("fused hard-swish", postprocess_tflite(plain, "fused", fold_constants=False)),
                 ("single partition, no folding",
                  postprocess_tflite(plain, "xnnpack", fold_constants=False)),
                 ("single partition, folding (default)", postprocess_tflite(plain, "xnnpack")))
        for name, flatbuffer in forms:
            outputs = export.tflite_predict(flatbuffer, inputs)
            print(f"| {count} | {name} | {100 * export.accuracy(outputs, test.labels):.1f} | "
                  f"{100 * export.agreement(outputs, reference):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
