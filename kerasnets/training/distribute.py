"""``tf.distribute`` strategies of a training run: which one (``build_strategy``), which process
writes (``is_chief``), and the mixed-precision policy of its devices."""

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Iterator, Optional

import tensorflow as tf

from kerasnets._keras import keras

STRATEGIES = ("auto", "default", "mirrored", "multiworker", "tpu")

log = logging.getLogger("kerasnets.training.fit")


def _tf_config():
    """Returns the parsed ``TF_CONFIG`` environment variable, or None when it is unset."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON ({err}): {raw!r}") from err
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise ValueError(f"TF_CONFIG must be a JSON object with a 'cluster'; received {raw!r}")
    return config


def _tpu_address(tpu):
    """Returns the TPU to connect to: ``tpu``, ``$TPU_NAME``, ``"local"`` on a TPU VM, or None."""
    if tpu:
        return tpu
    if os.environ.get("TPU_NAME"):
        return os.environ["TPU_NAME"]
    return "local" if Path("/dev/accel0").exists() or Path("/dev/vfio/0").exists() else None


def build_strategy(name: str = "auto", tpu: Optional[str] = None) -> tf.distribute.Strategy:
    """Returns the ``tf.distribute.Strategy`` called ``name``.

    - ``"default"``: TensorFlow's default strategy (one device);
    - ``"mirrored"``: ``MirroredStrategy`` over the local GPUs (the CPU without GPUs);
    - ``"multiworker"``: ``MultiWorkerMirroredStrategy`` of the cluster in ``TF_CONFIG``;
    - ``"tpu"``: ``TPUStrategy`` of ``tpu`` (a name or ``grpc://`` address; default
      ``$TPU_NAME``, or the local TPU of a TPU VM);
    - ``"auto"``: a TPU when one is named or attached, else multiworker when ``TF_CONFIG`` has
      more than one task, else mirrored with more than one GPU, else the default.

    A multi-worker strategy must be built before TensorFlow runs any op in the process.

    Raises:
      ValueError: an unknown name, no ``TF_CONFIG`` for ``"multiworker"``, no TPU for ``"tpu"``.
    """
    if name not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {STRATEGIES}; received strategy={name!r}")
    if name == "auto":
        config = _tf_config()
        tasks = sum(len(v) for v in config["cluster"].values()) if config else 0
        if _tpu_address(tpu):
            name = "tpu"
        elif tasks > 1:
            name = "multiworker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
        log.info("--strategy auto: %s", name)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if _tf_config() is None:
            raise ValueError(
                "--strategy multiworker needs the cluster in the TF_CONFIG environment variable, "
                'e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    address = _tpu_address(tpu)
    if address is None:
        raise ValueError("--strategy tpu: no TPU on this machine; name one with --tpu or the "
                         "TPU_NAME environment variable")
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as err:
        raise ValueError(f"--strategy tpu: cannot reach the TPU {address!r}: {err}") from err
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Returns whether this process is the one that writes checkpoints and logs."""
    return bool(strategy.extended.should_checkpoint)


def worker_index(strategy: tf.distribute.Strategy) -> int:
    """Returns the task index of this worker in its cluster (0 without a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(resolver.task_id) if resolver is not None and resolver.task_id is not None else 0


def mixed_precision_policy(strategy: tf.distribute.Strategy) -> str:
    """Returns the Keras mixed-precision policy for ``strategy``'s devices: ``mixed_bfloat16``
    on TPUs and CPUs, ``mixed_float16`` on GPUs."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "mixed_bfloat16"
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"


@contextlib.contextmanager
def dtype_policy(name: Optional[str]) -> Iterator[None]:
    """Sets the Keras global dtype policy ``name`` (None: unchanged) for the ``with`` block."""
    if name is None:
        yield
        return
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
