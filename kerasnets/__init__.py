"""kerasnets: lightweight image-classification networks for tf_keras, ready for QAT, TFLite and
phones.

    import kerasnets
    model = kerasnets.MobileNetV3Large(input_shape=(224, 224, 3), classes=1000)
    kerasnets.list_models()
    kerasnets.create_model("mobilenet_v3_small", alpha=0.75)
    print(kerasnets.profile(model))

The package follows the pipeline, each stage importing only the stages before it:
``layers`` -> ``models`` -> ``data`` -> ``training`` -> ``quantization`` -> ``export`` ->
``bench``; ``workflow`` (train -> QAT -> convert -> evaluate) and ``cli`` (the ``kerasnets``
command) sit on top.
"""

import importlib

__version__ = "0.1.0"

__all__ = [
    "DenseNet", "DenseNet121", "DenseNet169", "DenseNet201", "DenseNet264", "DenseNetCifar",
    "MobileNet", "MobileNetV1", "MobileNetV2", "MobileNetV3Large", "MobileNetV3Small",
    "MobileNetV4ConvSmall", "MobileNetV4ConvMedium", "GoogLeNet", "Xception", "ResNet50",
    "ResNet101", "ResNeXt50_32x4d", "MSDNetCifar", "MultiExitDenseNetCifar",
    "VGG16", "VGG19", "AlexNet", "ZFNet",
    "Profile", "profile", "create_model", "list_models", "layers",
]


def __getattr__(name):
    # The public names are imported on first use (PEP 562): importing TensorFlow takes seconds
    # and prints its C++ start-up lines, and the `kerasnets` command (kerasnets.cli) must decide
    # how quiet that is, and answer --help, before TensorFlow is imported.
    if name == "layers":
        return importlib.import_module("kerasnets.layers")
    if name in __all__:
        value = getattr(importlib.import_module("kerasnets.models"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kerasnets' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
