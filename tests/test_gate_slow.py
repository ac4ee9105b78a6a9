"""Slow tier (pytest -m slow): train each gated profile for real, a test per seed, and hold every
run to its own budget (parameters, epochs; its checkpoint must reproduce its accuracy). Once every
seed has trained, the verdict over them (mnist_gate.gate.judge_seeds, the verdict's own judge():
the final-epoch test accuracy, their mean with several seeds) decides the session: conftest.py,
pytest_sessionfinish. `pytest -m slow -n 2` trains two seeds at once, threads split between them.

CI trains its seeds with --defer-verdict (pytest -m slow -n auto) and judges every seed together
in one verdict job, with the same judge(). Each run goes to runs/gate-<profile>-seed<N>/ (record,
checkpoint, predictions and reports) for CI to upload, and each verdict to runs/gate-<profile>.md.
"""

import pytest

from mnist_gate import judging, paths
from train import TrainingError

from . import gate_runs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def test_a_seed_trains_within_its_budget(profile, seed, threads, request):
    try:
        run = gate_runs.train_seed(profile, seed, threads=threads)
    except (paths.RunFolderError, paths.SaveError, TrainingError) as err:
        pytest.fail(str(err), pytrace=False)
    request.node.user_properties.append(("gate_run", [profile.name, seed]))
    failures = judging.judge(profile, [run]).run_failures
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)
