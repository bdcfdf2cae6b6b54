"""Parameter and MAC counts of a Keras model, per layer and in total.

MACs are the multiply-accumulates of convolution and fully-connected layers, the convention of
the MobileNet papers ("Mult-Adds") and of DenseNet's "FLOPs": element-wise ops, pooling and
BatchNorm are not counted.
"""

import dataclasses
from typing import List, Tuple

from kerasnets._keras import keras, layers


@dataclasses.dataclass(frozen=True)
class LayerProfile:
    """One row of a profile: a layer's name, type, output shape, parameters and MACs."""

    name: str
    type: str
    output_shape: Tuple
    params: int
    macs: int


@dataclasses.dataclass(frozen=True)
class Profile:
    """A model's profile: total ``params`` (as ``model.count_params()``), total ``macs`` and the
    per-layer table ``layers``."""

    name: str
    params: int
    macs: int
    layers: List[LayerProfile]

    def table(self, only_counted=False):
        """Returns the per-layer table as text; ``only_counted`` keeps layers with params or MACs."""
        rows = [r for r in self.layers if r.params or r.macs or not only_counted]
        header = ("layer", "type", "output shape", "params", "MACs")
        body = [(r.name, r.type, str(r.output_shape), f"{r.params:,}", f"{r.macs:,}")
                for r in rows]
        body.append(("total", "", "", f"{self.params:,}", f"{self.macs:,}"))
        widths = [max(len(row[i]) for row in [header] + body) for i in range(5)]

        def fmt(row):
            return "  ".join(cell.ljust(w) if i < 3 else cell.rjust(w)
                             for i, (cell, w) in enumerate(zip(row, widths)))

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([fmt(header), rule] + [fmt(r) for r in body[:-1]] + [rule, fmt(body[-1])])

    def __str__(self):
        return (f"{self.name}: {self.params:,} params, {self.macs / 1e6:,.1f}M MACs\n"
                + self.table(only_counted=True))


def _spatial(shape):
    """Returns the number of output positions (rows * cols) of a channels-last 4D shape."""
    if any(d is None for d in shape[1:3]):
        raise ValueError(
            f"profile() needs static spatial shapes; a layer has output shape {shape}. Build the "
            "model with a fixed input_shape, e.g. input_shape=(224, 224, 3)."
        )
    return shape[1] * shape[2]


def layer_macs(layer):
    """Returns the conv/fully-connected multiply-accumulates of one (built) Keras layer."""
    if isinstance(layer, keras.Model):
        return sum(layer_macs(inner) for inner in layer.layers)
    if isinstance(layer, layers.DepthwiseConv2D):
        kh, kw, in_c, mult = layer.depthwise_kernel.shape
        return _spatial(layer.output_shape) * kh * kw * in_c * mult
    if isinstance(layer, layers.SeparableConv2D):
        kh, kw, in_c, mult = layer.depthwise_kernel.shape
        out_c = layer.pointwise_kernel.shape[-1]
        return _spatial(layer.output_shape) * (kh * kw * in_c * mult + in_c * mult * out_c)
    if isinstance(layer, layers.Conv2D):
        # The kernel's input axis is already in_channels / groups for grouped convs.
        kh, kw, in_per_group, out_c = layer.kernel.shape
        return _spatial(layer.output_shape) * kh * kw * in_per_group * out_c
    if isinstance(layer, layers.Dense):
        in_f, out_f = layer.kernel.shape
        positions = 1
        for d in layer.output_shape[1:-1]:
            positions *= d
        return positions * in_f * out_f
    return 0


def profile(model):
    """Returns the ``Profile`` (params, MACs, per-layer table) of a built Keras ``model``."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"profile() takes a tf_keras Model; received an object of type {type(model).__name__}"
        )
    rows = []
    for layer in model.layers:
        shape = layer.output_shape
        rows.append(LayerProfile(layer.name, type(layer).__name__,
                                 tuple(shape) if isinstance(shape, tuple) else shape,
                                 int(layer.count_params()), int(layer_macs(layer))))
    return Profile(model.name, int(model.count_params()), sum(r.macs for r in rows), rows)
