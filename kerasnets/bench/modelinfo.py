"""What the host knows about the files it sends to a device: models and the benchmark binary.

A model's precision is read from the ``.tflite`` flatbuffer itself (LiteRT's generated schema,
no interpreter): the dtype of most activations (tensors without constant data, counted by
tensor) and of most weight values (tensors with constant data, counted by element), ignoring
int32/int64/bool tensors (shapes, indices, int32 biases of quantized convolutions):

    activations int8 / uint8          -> "int8" / "uint8"  (full-integer quantization)
    activations int16                 -> "int16x8"         (16-bit activations, 8-bit weights)
    activations float32, weights int8 -> "dynamic_int8"    (dynamic-range quantization; int4
                                                            weights -> "dynamic_int4")
    activations float32, weights fp16 -> "float16"         (float16 weights, dequantized)
    otherwise                         -> "float32"

"Most activations" is a majority count, so a full-integer model with float input/output (and
QUANTIZE/DEQUANTIZE at its ends) still reads as "int8".
"""

import collections
import hashlib
import struct
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema

_IGNORED_TYPES = {
    schema.TensorType.INT32,
    schema.TensorType.INT64,
    schema.TensorType.BOOL,
    schema.TensorType.STRING,
    schema.TensorType.RESOURCE,
    schema.TensorType.VARIANT,
}
_TYPE_NAMES = {value: name.lower() for name, value in vars(schema.TensorType).items()
               if not name.startswith("_")}

# ELF e_machine values -> Android ABI names (https://developer.android.com/ndk/guides/abis).
_ELF_MACHINE_ABI = {
    (40, 1): "armeabi-v7a",
    (183, 2): "arm64-v8a",
    (3, 1): "x86",
    (62, 2): "x86_64",
    (243, 2): "riscv64",
}


def file_sha256(path: Path | str) -> str:
    """Returns the hex sha256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tensor_type_counts(model):
    """Returns (activation dtype -> tensor count, weight dtype -> element count).

    Weights are counted by elements: a dynamic-range conversion leaves small tensors (biases,
    tiny kernels) in float32, so most weight *tensors* can be float while most weight *values*
    are int8.
    """
    activations = collections.Counter()
    weights = collections.Counter()
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            dtype = tensor.Type()
            if dtype in _IGNORED_TYPES:
                continue
            buffer = model.Buffers(tensor.Buffer()) if tensor.Buffer() > 0 else None
            name = _TYPE_NAMES.get(dtype, str(dtype))
            if buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0):
                shape = tensor.ShapeAsNumpy() if tensor.ShapeLength() else []
                weights[name] += int(abs(np.prod(shape))) or 1
            else:
                activations[name] += 1
    return activations, weights


def tflite_precision(path: Path | str) -> str:
    """Returns the precision label of a ``.tflite`` file (see the module docstring).

    Raises ValueError when the file is not a TFLite flatbuffer.
    """
    data = Path(path).read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(f"model_path={str(path)!r} is not a TFLite flatbuffer (no 'TFL3' tag)")
    try:
        activations, weights = _tensor_type_counts(schema.Model.GetRootAsModel(data, 0))
    except (IndexError, TypeError, struct.error) as error:
        raise ValueError(f"model_path={str(path)!r} is not a readable TFLite flatbuffer: "
                         f"{error}") from None
    activation = activations.most_common(1)[0][0] if activations else "float32"
    weight = weights.most_common(1)[0][0] if weights else activation
    if activation in ("int8", "uint8"):
        return activation
    if activation == "int16":
        return "int16x8"
    if weight in ("int8", "int4"):
        return f"dynamic_{weight}"
    if weight == "float16":
        return "float16"
    return "float32"


def model_info(path: Path | str) -> dict:
    """Returns {"model_path", "model_name", "model_sha256", "model_bytes", "precision"}.

    ``precision`` is None when the file cannot be read as a flatbuffer (the benchmark still
    runs; the tool on the device gives its own verdict on the file).
    """
    path = Path(path).resolve()
    try:
        precision = tflite_precision(path)
    except ValueError:
        precision = None
    return {
        "model_path": str(path),
        "model_name": path.name,
        "model_sha256": file_sha256(path),
        "model_bytes": path.stat().st_size,
        "precision": precision,
    }


def binary_abi(path: Path | str) -> str | None:
    """Returns the Android ABI an ELF executable was built for, or None for a ``#!`` script.

    Raises ValueError when the file is neither an ELF executable nor a script, or is an ELF
    file for a machine no Android ABI uses.
    """
    with open(path, "rb") as handle:
        header = handle.read(20)
    if header.startswith(b"#!"):
        return None
    if not header.startswith(b"\x7fELF") or len(header) < 20:
        raise ValueError(
            f"benchmark binary {str(path)!r} is not an executable (neither an ELF file nor a "
            "#! script)"
        )
    elf_class = header[4]
    byteorder = "little" if header[5] == 1 else "big"
    machine = int.from_bytes(header[18:20], byteorder)
    abi = _ELF_MACHINE_ABI.get((machine, elf_class))
    if abi is None:
        raise ValueError(
            f"benchmark binary {str(path)!r} is an ELF file for machine {machine} "
            f"(class {elf_class}), which is no Android ABI"
        )
    return abi
