"""Slow tier (pytest -m slow): train each gated profile once, for real, and hold it to its budget.

The run goes to runs/gate-<profile>/ (metrics.json, model.pt and the reports) for CI to upload;
a previous gate run there is replaced.
"""

import shutil

import pytest
import torch

import train
from mnist_gate import checks, networks, paths, report
from mnist_gate.data import load_mnist

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="session")
def gated_run(profile):
    out = paths.RUNS / f"gate-{profile.name}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = train.Config(model=profile.model, out=out, progress=False, **profile.train)
    net, metrics = train.train(cfg)
    report.write_run_reports(out, metrics, net)
    return cfg, net, metrics


def test_final_epoch_accuracy_meets_the_threshold(gated_run, profile):
    _, _, metrics = gated_run
    margin = checks.check_accuracy(metrics["final_test_acc"], profile)
    print(
        f"{profile.name}: final-epoch test accuracy {metrics['final_test_acc']:.2%}, threshold "
        f"{profile.min_accuracy:.2%}, margin {margin * 100:+.2f} points"
    )


def test_training_stays_within_the_epoch_budget(gated_run, profile):
    _, _, metrics = gated_run
    assert len(metrics["history"]) == metrics["epochs"]
    checks.check_epochs(metrics["epochs"], profile)


def test_the_trained_network_is_within_the_parameter_budget(gated_run, profile):
    _, net, metrics = gated_run
    assert checks.check_parameters(net, profile) == metrics["parameters"]


def test_the_checkpoint_reproduces_the_reported_accuracy(gated_run):
    cfg, net, metrics = gated_run
    checkpoint = torch.load(cfg.out / "model.pt", weights_only=True)
    fresh = networks.build(metrics["model"])
    fresh.load_state_dict(checkpoint["model"])
    device = next(net.parameters()).device
    fresh.to(device, memory_format=torch.channels_last)
    data = load_mnist()
    _, accuracy = train.evaluate(
        fresh, data["test_x"].unsqueeze(1).to(device), data["test_y"].to(device)
    )
    assert accuracy == pytest.approx(metrics["final_test_acc"], abs=1e-4)
