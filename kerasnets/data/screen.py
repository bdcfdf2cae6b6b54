"""Which examples of a data set are images, and which classes it has: the one rule of every
kerasnets data path (image folders and zips, TFRecord files; training, evaluation and the
converter).

An example is used when ``tf.io.decode_image(bytes, channels=3, expand_animations=False)`` (the
decoder of ``kerasnets.data.decode_image`` and of the ``tf.data`` pipelines) decodes its bytes.
Every other one (a corrupt or truncated image, a text file, a file that cannot be read) is
skipped with a warning naming it, then a count. The examples are decoded once, in parallel, when
a data set is opened, so that training never meets an undecodable example mid-epoch. A data set
must then have at least two classes, each with a decodable image.
"""

import logging
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tqdm import tqdm

log = logging.getLogger(__name__)

_KEY_BATCH = 4096


def decodable(keyed: tf.data.Dataset, load: Callable[[tf.Tensor], tf.Tensor],
              keep_images: bool = False, total: Optional[int] = None, desc: str = "",
              progress: bool = False) -> Tuple[np.ndarray, Optional[List[np.ndarray]]]:
    """Returns ``(keys, images)``: the int64 keys of the ``(key, record)`` elements of ``keyed``
    whose ``load(record)`` bytes decode as images, in order, and with ``keep_images`` their
    decoded ``uint8`` ``(rows, cols, 3)`` arrays (None otherwise)."""
    def check(key, record):
        image = tf.io.decode_image(load(record), channels=3, expand_animations=False)
        return key, (image if keep_images else tf.shape(image)[0])

    # ignore_errors drops exactly the elements whose read or decode failed; the keys say which.
    checked = keyed.map(check, num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True).ignore_errors()
    if keep_images:
        keys, images = [], []
        # disable=None: bars on a terminal only, not in logs.
        for key, image in tqdm(checked.as_numpy_iterator(), total=total, desc=desc, unit="img",
                               disable=None if progress else True, leave=False):
            keys.append(key)
            images.append(image)
        return np.asarray(keys, dtype="int64"), images
    chunks = [keys for keys, _ in checked.batch(_KEY_BATCH).as_numpy_iterator()]
    return (np.concatenate(chunks) if chunks else np.zeros([0], "int64")), None


def failure(read: Callable[[], bytes]) -> str:
    """Returns why the bytes ``read()`` returns do not decode as an image (the first line of
    TensorFlow's error)."""
    try:
        tf.io.decode_image(read(), channels=3, expand_animations=False)
    except (tf.errors.OpError, OSError) as err:
        text = str(getattr(err, "message", err)).strip()
        return text.splitlines()[0] if text else type(err).__name__
    return "it could not be read or decoded while the data set was opened"


def report_skipped(skipped: Sequence[Tuple[str, str]], total: int, description: str,
                   unit: str = "files") -> None:
    """Logs a warning per skipped ``(name, reason)``, then their count out of ``total``
    ``unit``."""
    for name, reason in skipped:
        log.warning("skipping %s: not a decodable image (%s)", name, reason)
    if skipped:
        log.warning("skipped %d of %d %s of %s that could not be decoded", len(skipped), total,
                    unit, description)


def check_classes(counts: Dict[str, int], description: str) -> None:
    """Raises ``ValueError`` unless ``counts`` (decodable images per class) has at least two
    classes, each with an image; the message names the class."""
    for name, count in counts.items():
        if count == 0:
            raise ValueError(f"{description}: class {name!r} has no decodable image; every class "
                             "needs at least one (remove the folder or add images)")
    if len(counts) < 2:
        only = f" ({next(iter(counts))!r})" if counts else ""
        raise ValueError(f"{description} has {len(counts)} class{only}; a classifier needs at "
                         "least two classes with images")
