"""Reports: the README and each run's files say what the code and the run say, nothing else."""

import re

import numpy as np

from mnist_gate import paths, report

from .test_verdict import fake_metrics


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


def test_the_curves_are_drawn(tmp_path):
    report.plot_curves(fake_metrics(0.9945), tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_errors_are_drawn_as_a_grid(tmp_path):
    images = np.zeros((300, 28, 28), dtype=np.uint8)
    pairs = np.array([np.arange(300) % 10, np.arange(300) % 10], dtype=np.uint8)
    pairs[1, [3, 50, 299]] = 0
    report.plot_errors(fake_metrics(0.99), pairs, images, tmp_path / "errors.png")
    assert (tmp_path / "errors.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
