"""The benchmark refuses bad values in one line, before it spends any time measuring."""

import pytest
import torch

from mnist_gate.data import MEAN, SIZE, STD
from scripts import benchmark


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--steps", "0"], "argument --steps: must be positive, got 0"),
        (["--steps", "many"], "argument --steps: invalid positive_int value: 'many'"),
        (["--model", "Nope"], "--model 'Nope' is not a network in model.py"),
        (["--device", "tpu"], "--device must be auto, cpu or cuda, got 'tpu'"),
    ],
)
def test_bad_values_exit_2_with_one_line(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit:
        benchmark.main([*argv, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert exit.value.code == 2
    assert err.count("\n") == 1 and message in err, err


def test_an_earlier_run_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    with pytest.raises(SystemExit) as exit:
        benchmark.main(["--out", str(out)])
    assert exit.value.code == 2 and "is not an empty folder" in capsys.readouterr().err
    assert (out / "metrics.json").read_text() == "{}"


def test_the_reference_serves_normalised_images_and_their_labels():
    images = torch.zeros(2, SIZE, SIZE, dtype=torch.uint8)
    images[:, 10:18, 12:16] = 255
    dataset = benchmark.PilMnist(images, torch.tensor([3, 7]))
    torch.manual_seed(0)
    x, y = dataset[1]
    assert len(dataset) == 2 and y == 7
    assert x.shape == (1, SIZE, SIZE) and x.dtype == torch.float32
    background, stroke = (0 - MEAN) / STD, (1 - MEAN) / STD
    assert x.min() == pytest.approx(background) and x.max() == pytest.approx(stroke)
