"""Reports: the README and the run summary say what the code and the run say, nothing else."""

import json
import re

import pytest

from mnist_gate import paths, report


def fake_metrics(accuracy: float, model: str = "Net") -> dict:
    history = [
        {"epoch": e, "train_loss": 0.6, "train_acc": 0.98, "test_loss": 0.12,
         "test_acc": accuracy - (3 - e) * 0.001, "lr": 0.1, "train_seconds": 3.0, "seconds": 3.4}
        for e in (1, 2, 3)
    ]  # fmt: skip
    return {
        "model": model, "parameters": 7_786, "epochs": 3, "final_test_acc": accuracy, "seed": 0,
        "wall_seconds": 12.0, "device": "test cpu", "device_type": "cpu", "threads": 2,
        "torch": "2.14.1", "python": "3.11.7", "git_commit": None, "history": history,
    }  # fmt: skip


def test_readme_architecture_matches_the_networks():
    readme = paths.README.read_text()
    section = re.search(
        r"<!-- generated:architecture -->\n(.*?)<!-- /generated:architecture -->", readme, re.S
    )
    assert section, "README.md has no generated:architecture section"
    assert section.group(1).strip() == report.architecture().strip(), (
        "README.md's architecture no longer matches model.py; run "
        "`python -m mnist_gate.report readme`"
    )


def test_the_summary_passes_a_run_over_the_bar_and_fails_one_under_it():
    assert "| final-epoch test accuracy | 99.45% | >= 99.40% | +0.05 points | pass |" in (
        report.run_summary(fake_metrics(0.9945))
    )
    assert "| final-epoch test accuracy | 99.35% | >= 99.40% | -0.05 points | **FAIL** |" in (
        report.run_summary(fake_metrics(0.9935))
    )


def test_the_comparison_says_plainly_when_main_has_no_result(tmp_path):
    assert "No gate result from main to compare with" in report.comparison(
        [fake_metrics(0.9945)], tmp_path
    )


def test_the_comparison_shows_the_change_against_main(tmp_path):
    run = tmp_path / "gate-123" / "gate-8k"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(fake_metrics(0.9940)))
    text = report.comparison([fake_metrics(0.9945)], tmp_path)
    assert "| Net final-epoch accuracy | 99.40% | 99.45% | +0.05 |" in text


def test_the_history_says_what_each_epoch_trained_on():
    metrics = fake_metrics(0.9945)
    sizes, augmented = (20, 28, 28), (True, True, False)
    for row, size, aug in zip(metrics["history"], sizes, augmented, strict=True):
        row.update(size=size, augmented=aug)
    summary = report.run_summary(metrics)
    for epoch, images in ((1, "20x20 augmented"), (2, "28x28 augmented"), (3, "28x28 clean")):
        assert f"| {epoch} | {images} |" in summary


def test_the_curves_are_drawn(tmp_path):
    report.plot_curves(fake_metrics(0.9945), tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_of_a_folder_without_runs_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        report.main(["summary", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.count("\n") == 1 and "no gate-*/metrics.json under" in err
