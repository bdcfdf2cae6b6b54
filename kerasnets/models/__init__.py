"""The model families, one module each, and what they share.

- Families (each opens with its architecture as rows in the paper's order, then one builder):
  ``mobilenet_v1``, ``mobilenet_v2``, ``mobilenet_v3``, ``mobilenet_v4``, ``densenet``,
  ``resnet``, ``googlenet``, ``xception``, ``vgg``, ``alexnet`` (AlexNet and ZFNet),
  ``early_exit`` (multi-exit DenseNet, MSDNet).
- ``registry``: ``list_models``, ``create_model``, ``get_entry`` (snake_case names).
- ``convention``: the keras.applications calling convention (argument checks, input, pooling,
  classifier head).
- ``weights``: loading ``.h5`` weight files by layer name, with checks.
- ``features``: multi-scale feature maps (``create_model(..., features_only=True)``).
- ``profiler``: parameters and conv/dense MACs per layer.
"""

from kerasnets.models.alexnet import AlexNet, ZFNet
from kerasnets.models.densenet import (
    DenseNet, DenseNet121, DenseNet169, DenseNet201, DenseNet264, DenseNetCifar,
)
from kerasnets.models.early_exit import MSDNetCifar, MultiExitDenseNetCifar
from kerasnets.models.googlenet import GoogLeNet
from kerasnets.models.mobilenet_v1 import MobileNet, MobileNetV1
from kerasnets.models.mobilenet_v2 import MobileNetV2
from kerasnets.models.mobilenet_v3 import MobileNetV3Large, MobileNetV3Small
from kerasnets.models.mobilenet_v4 import MobileNetV4ConvMedium, MobileNetV4ConvSmall
from kerasnets.models.profiler import Profile, profile
from kerasnets.models.registry import create_model, get_entry, list_models
from kerasnets.models.resnet import ResNet50, ResNet101, ResNeXt50_32x4d
from kerasnets.models.vgg import VGG16, VGG19
from kerasnets.models.xception import Xception

__all__ = [
    "DenseNet", "DenseNet121", "DenseNet169", "DenseNet201", "DenseNet264", "DenseNetCifar",
    "MobileNet", "MobileNetV1", "MobileNetV2", "MobileNetV3Large", "MobileNetV3Small",
    "MobileNetV4ConvSmall", "MobileNetV4ConvMedium", "GoogLeNet", "Xception", "ResNet50",
    "ResNet101", "ResNeXt50_32x4d", "MSDNetCifar", "MultiExitDenseNetCifar",
    "VGG16", "VGG19", "AlexNet", "ZFNet",
    "Profile", "profile", "create_model", "get_entry", "list_models",
]
