"""Slow tier (pytest -m slow): train each gated profile for real, once per seed, and assert the
verdict's own answer (mnist_gate.verdict.judge): parameters and epochs of every run, and the
final-epoch test accuracy, their mean with several seeds. Each run's checkpoint must reproduce its
accuracy (mnist_gate.gate). CI trains one seed per job with --defer-verdict and judges every seed
together in one verdict job, with the same judge().

Each run goes to runs/gate-<profile>-seed<N>/ (record, checkpoint, predictions and reports) for CI
to upload, and the verdict to runs/gate-<profile>.md.
"""

import pytest

from mnist_gate import gate, paths, verdict
from train import TrainingError

from .conftest import selected_seeds

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def test_the_profile_meets_its_budget(profile, request):
    try:
        records = gate.train_profile(profile, selected_seeds(request.config))
    except (paths.RunFolderError, paths.SaveError, TrainingError) as err:
        pytest.fail(str(err), pytrace=False)
    judged = verdict.judge(profile, records)
    paths.write_text(paths.RUNS / f"gate-{profile.name}.md", judged.markdown)
    # One seed of several (CI's seed jobs): its accuracy alone decides nothing; its budget does.
    deferred = request.config.getoption("--defer-verdict")
    failures = judged.run_failures if deferred else judged.failures
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)
