"""Builds kerasnets/data/cifar10_mini.zip, the small real dataset that ships with kerasnets.

The zip holds the original JPEG files (copied byte for byte, not re-encoded) of the first
``--train-per-class`` training and ``--test-per-class`` test images of each CIFAR-10 class from
the project's shared JPEG copy (../shared/data/cifar10), in the image-folder layout
``train/<class>/NNNN.jpg`` and ``test/<class>/NNNN.jpg`` that ``kerasnets.data`` reads.

It is run by hand when the embedded subset changes, never at install time:

    python benchmarks/make_embedded_dataset.py            # writes kerasnets/data/cifar10_mini.zip
"""

import argparse
import logging
import os
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "cifar10"
DEFAULT_OUT = REPO / "kerasnets" / "data" / "cifar10_mini.zip"
# Fixed timestamp: rebuilding from the same files gives the same zip bytes.
ZIP_DATE = (2009, 4, 8, 0, 0, 0)

log = logging.getLogger("make_embedded_dataset")


def build_zip(source, out, train_per_class, test_per_class):
    """Returns the number of images written to the zip ``out`` from the image folders of ``source``.

    ``source`` holds ``train/<class>/*.jpg`` and ``test/<class>/*.jpg``; the first files of each
    class in sorted order are taken. The zip is written to a temporary file and moved into place,
    so a failed run leaves no partial zip.
    """
    source, out = Path(source), Path(out)
    count = 0
    handle, tmp = tempfile.mkstemp(suffix=".zip.tmp", dir=out.parent)
    os.close(handle)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for split, per_class in (("train", train_per_class), ("test", test_per_class)):
                classes = sorted(p for p in (source / split).iterdir() if p.is_dir())
                if not classes:
                    raise ValueError(f"no class folders in {source / split}")
                for class_dir in classes:
                    files = sorted(class_dir.glob("*.jpg"))[:per_class]
                    if len(files) < per_class:
                        raise ValueError(
                            f"{class_dir} has {len(files)} images; {per_class} are needed"
                        )
                    for path in files:
                        info = zipfile.ZipInfo(f"{split}/{class_dir.name}/{path.name}", ZIP_DATE)
                        # JPEG is already compressed: storing keeps the files byte-identical and
                        # the zip readable without inflating.
                        archive.writestr(info, path.read_bytes())
                        count += 1
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    return count


def main(argv=None):
    """Returns the exit status of the command line (0 on success)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help="CIFAR-10 image folders with train/ and test/ (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="zip file to write (default: %(default)s)")
    parser.add_argument("--train-per-class", type=int, default=200,
                        help="training images per class (default: %(default)s)")
    parser.add_argument("--test-per-class", type=int, default=50,
                        help="test images per class (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        count = build_zip(args.source, args.out, args.train_per_class, args.test_per_class)
    except (OSError, ValueError) as err:
        log.error("%s", err)
        return 1
    log.info("wrote %d images to %s (%.2f MB)", count, args.out, args.out.stat().st_size / 1e6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
