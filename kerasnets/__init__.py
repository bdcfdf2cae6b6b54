"""kerasnets: lightweight image-classification networks for tf_keras, ready for QAT, TFLite and
phones.

    import kerasnets
    model = kerasnets.MobileNetV3Large(input_shape=(224, 224, 3), classes=1000)
    kerasnets.list_models()
    kerasnets.create_model("mobilenet_v3_small", alpha=0.75)
    print(kerasnets.profile(model))
"""

from kerasnets import layers
from kerasnets.densenet import (
    DenseNet, DenseNet121, DenseNet169, DenseNet201, DenseNet264, DenseNetCifar,
)
from kerasnets.early_exit import MSDNetCifar, MultiExitDenseNetCifar
from kerasnets.googlenet import GoogLeNet
from kerasnets.mobilenet_v1 import MobileNet, MobileNetV1
from kerasnets.mobilenet_v2 import MobileNetV2
from kerasnets.mobilenet_v3 import MobileNetV3Large, MobileNetV3Small
from kerasnets.mobilenet_v4 import MobileNetV4ConvMedium, MobileNetV4ConvSmall
from kerasnets.profiler import Profile, profile
from kerasnets.registry import create_model, list_models
from kerasnets.resnet import ResNet50, ResNet101, ResNeXt50_32x4d
from kerasnets.xception import Xception

__version__ = "0.1.0"

__all__ = [
    "DenseNet", "DenseNet121", "DenseNet169", "DenseNet201", "DenseNet264", "DenseNetCifar",
    "MobileNet", "MobileNetV1", "MobileNetV2", "MobileNetV3Large", "MobileNetV3Small",
    "MobileNetV4ConvSmall", "MobileNetV4ConvMedium", "GoogLeNet", "Xception", "ResNet50",
    "ResNet101", "ResNeXt50_32x4d", "MSDNetCifar", "MultiExitDenseNetCifar",
    "Profile", "profile", "create_model", "list_models", "layers",
]
