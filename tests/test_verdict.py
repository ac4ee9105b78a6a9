"""The verdict knows its noise: the statistics against values worked out by hand or published, the
summary for one seed and for three, and the paired comparison with main."""

import json
import shutil
import textwrap
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mnist_gate import judging, markdown, paths, profiles, rates, runfolder, stats, verdict

from . import gate_runs
from .helpers import predictions, record, save

PROFILE = profiles.load().profiles["8k"]


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Statistics in
# Medicine 17:857-872, Table II, method 3 (Wilson's score interval without continuity correction).
@pytest.mark.parametrize(
    "correct, n, low, high",
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
     (1, 29, 0.0061, 0.1718)],
)  # fmt: skip
def test_the_wilson_interval_matches_the_published_table(correct, n, low, high):
    lo, hi = stats.wilson(correct, n)
    assert (round(lo, 4), round(hi, 4)) == (low, high)


def test_the_wilson_interval_of_a_gated_run():
    # 9,947 of 10,000: p = 0.9947, z^2 = 3.8415: centre (p + z^2 / 2n) / (1 + z^2 / n) = 0.994510,
    # half-width z * sqrt(p (1 - p) / n + z^2 / 4n^2) / (1 + z^2 / n) = 0.001435, by hand.
    lo, hi = stats.wilson(9_947, 10_000)
    assert lo == pytest.approx(0.993075, abs=2e-6) and hi == pytest.approx(0.995946, abs=2e-6)


# Student's t quantiles from any printed table: t(0.95; 2) = 2.920, t(0.95; 9) = 1.833,
# t(0.975; 4) = 2.776.
@pytest.mark.parametrize("p, df, t", [(0.95, 2, 2.920), (0.95, 9, 1.833), (0.975, 4, 2.776)])
def test_t_quantiles_match_the_table(p, df, t):
    assert stats.t_quantile(p, df) == pytest.approx(t, abs=5e-4)


def test_the_lower_bound_on_the_mean_by_hand():
    # 99.5, 99.6, 99.4: mean 99.5, s = 0.1, so 99.5 - 2.920 * 0.1 / sqrt(3) = 99.3314.
    assert stats.mean_lower_bound([99.5, 99.6, 99.4]) == pytest.approx(99.3314, abs=1e-4)


def test_the_chance_of_a_run_under_the_threshold_by_hand():
    # One standard deviation under the mean: Phi(-1) = 0.1587.
    assert stats.below_probability([99.5, 99.6, 99.4], 99.4) == pytest.approx(0.1587, abs=1e-4)


@pytest.mark.parametrize(
    "fixed, broken, p",
    [(9, 1, 22 / 1024),  # 2 * (C(10,0) + C(10,1)) / 2^10
     (5, 0, 2 / 32),  # 2 * C(5,0) / 2^5
     (3, 3, 1.0), (0, 0, 1.0),
     (1, 8, 20 / 512)],  # 2 * (C(9,0) + C(9,1)) / 2^9
)  # fmt: skip
def test_the_exact_mcnemar_p_value_by_hand(fixed, broken, p):
    assert stats.mcnemar(fixed, broken) == pytest.approx(p)


def test_the_mcnemar_p_value_holds_for_thousands_of_images():
    assert stats.mcnemar(3_000, 3_000) == 1.0
    assert stats.mcnemar(3_000, 2_700) < 0.001


def summary(folder, main=None, note=None, seeds=(0,)):
    """The CI verdict over profile 8k's runs of `seeds` in folder."""
    return verdict.summary(folder, main_dir=main, note=note, seeds=list(seeds), names=["8k"])


def test_one_seed_gets_the_gate_table_with_its_interval(tmp_path):
    save(tmp_path / "gate-8k-seed0", record(0.9947))
    passed, text = summary(tmp_path)
    assert passed
    assert (
        "| final-epoch test accuracy | 99.47% (95% interval 99.31% to 99.59%) | >= 99.40% | "
        "+0.07 points | pass |" in text
    )


def test_three_seeds_are_judged_on_their_mean(tmp_path):
    for seed, acc in enumerate((0.9950, 0.9938, 0.9945)):
        save(tmp_path / f"gate-8k-seed{seed}", record(acc, seed=seed))
    passed, text = summary(tmp_path, seeds=(0, 1, 2))
    assert passed, text  # one run is under 99.40%, the mean of 99.443% is not
    assert "Net (profile 8k), 3 seeds: pass" in text
    for seed, acc in ((0, "99.50%"), (1, "99.38% (under)"), (2, "99.45%")):
        assert f"| {seed} | {acc} |" in text
    assert "| mean final-epoch test accuracy | 99.443% | >= 99.40% | pass |" in text
    assert "| min / max | 99.38% / 99.50% |" in text
    assert "| standard deviation over seeds | 0.060 points |" in text
    # mean 0.994433, s = 0.000603: 0.994433 - 6.965 * 0.000603 / sqrt(3) = 0.99201 (99%, t).
    assert "| 99% lower bound on the mean (one-sided, t) | 99.201% |" in text
    # (0.994 - 0.99443) / 0.000603 = -0.72 standard deviations: Phi(-0.72) = 23.6%.
    assert "| P(one more run < threshold), normal fit | 23.6% |" in text


def test_three_seeds_with_a_mean_under_the_bar_fail(tmp_path, capsys):
    for seed, acc in enumerate((0.9941, 0.9935, 0.9938)):
        save(tmp_path / f"gate-8k-seed{seed}", record(acc, seed=seed))
    with pytest.raises(SystemExit) as exit:
        verdict.main([str(tmp_path), "--seeds", "0,1,2", "--profile", "8k"])
    assert exit.value.code == 1
    assert "3 seeds: **FAIL**" in capsys.readouterr().out


def test_the_change_against_main_is_paired_on_the_same_images(tmp_path):
    new = tmp_path / "this" / "gate-gpu-2-1-seed0" / "gate-8k-seed0"
    save(new, record(0.9950), predictions(list(range(50))))
    main = tmp_path / "main" / "gate-gpu-1-1-seed0" / "gate-8k-seed0"
    save(main, record(0.9942), predictions(list(range(40)) + list(range(100, 118))))
    _, text = summary(tmp_path / "this", tmp_path / "main")
    # Fixed: the 18 images 100-117; broken: the 10 images 40-49.
    assert "| 8k seed 0 | 99.42% | 99.50% | 18 | 10 | 0.185 | no evidence of a change |" in text


def test_a_change_that_alters_no_computation_fixes_and_breaks_nothing(tmp_path):
    same = predictions([1, 2, 3])
    save(tmp_path / "new" / "gate-8k-seed0", record(0.9997), same)
    save(tmp_path / "main" / "gate-8k-seed0", record(0.9997), same)
    _, text = summary(tmp_path / "new", tmp_path / "main")
    assert "| 0 | 0 | 1 | no evidence of a change |" in text


def test_a_significant_change_says_so(tmp_path):
    save(tmp_path / "new" / "gate-8k-seed0", record(0.9990), predictions(list(range(10))))
    save(tmp_path / "main" / "gate-8k-seed0", record(0.9960), predictions(list(range(40))))
    _, text = summary(tmp_path / "new", tmp_path / "main")
    assert "| 30 | 0 |" in text and "significantly better" in text
    assert "significantly worse" in judging.plain(0, 30, stats.mcnemar(0, 30))


def test_a_missing_or_old_main_result_is_one_sentence(tmp_path):
    save(tmp_path / "new" / "gate-8k-seed0", record(0.9950))
    _, text = summary(tmp_path / "new", tmp_path / "main")
    missing = tmp_path / "main"
    assert f"No gate result from main to compare with. The folder {missing} does not exist." in text
    _, text = summary(tmp_path / "new", tmp_path / "main", "Its artifact expired.")
    assert "No gate result from main to compare with. Its artifact expired." in text
    (tmp_path / "main").mkdir()
    _, text = summary(tmp_path / "new", tmp_path / "main")
    assert "No gate result from main to compare with. This run neither restored main" in text
    save(tmp_path / "main" / "gate-8k", record(0.9940), kept=False)  # no predictions
    _, text = summary(tmp_path / "new", tmp_path / "main")
    assert (
        "No paired comparison for 8k seed 0: main's gate result has no test predictions for it"
        in text
    )


def test_the_history_says_what_each_epoch_trained_on():
    run = record(0.9945)
    history = tuple(
        replace(h, size=size) for h, size in zip(run.history, (20, 28, 28), strict=True)
    )
    text = markdown.run_summary(replace(run, history=history), PROFILE)
    for epoch, images in ((1, "20x20 augmented"), (2, "28x28 augmented"), (3, "28x28 clean")):
        assert f"| {epoch} | {images} |" in text


def test_a_folder_without_runs_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        verdict.main([str(tmp_path)])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.count("\n") == 1 and "no gate-*/metrics.json under" in err


def test_the_verdict_names_every_broken_budget_and_passes_none():
    runs = [record(seed=0, parameters=8_000), record(seed=1, epochs=16), record(seed=2)]
    judged = judging.judge(PROFILE, runs)
    assert not judged.passed and judged.accuracy_failure is None
    assert judged.run_failures == (
        "seed 0: 8,000 trainable parameters; profile 8k allows fewer than 8,000, so 1 too many",
        "seed 1: trained 16 epochs; profile 8k allows at most 15, 1 too many",
    )
    assert judging.judge(PROFILE, [record(seed=0), record(seed=2)]).passed


def test_the_verdict_on_one_seed_is_that_seeds_accuracy():
    assert judging.judge(PROFILE, [record(0.9940)]).passed  # at the threshold
    judged = judging.judge(PROFILE, [record(0.9939)])
    assert judged.failures == [
        "final-epoch test accuracy 99.39% is below the 99.40% threshold of profile 8k by "
        "0.01 points"
    ]


def test_the_verdict_on_several_seeds_is_their_mean():
    runs = [record(acc, seed=s) for s, acc in enumerate((0.9950, 0.9938, 0.9945))]
    assert judging.judge(PROFILE, runs).passed  # one run under 99.40%, the mean not
    runs = [record(acc, seed=s) for s, acc in enumerate((0.9941, 0.9935, 0.9938))]
    (why,) = judging.judge(PROFILE, runs).failures
    assert why.startswith("mean of 3 seeds: final-epoch test accuracy 99.38% is below")


def seed_test(monkeypatch, run):
    """The slow tier's test of one seed, on a record made here instead of trained."""
    from . import test_gate_slow

    monkeypatch.setattr(gate_runs, "train_seed", lambda profile, seed, threads: run)
    request = SimpleNamespace(node=SimpleNamespace(user_properties=[]))
    test_gate_slow.test_a_seed_trains_within_its_budget(PROFILE, 0, 0, request)
    return request.node.user_properties


def test_a_seed_is_held_to_its_own_budget(monkeypatch):
    assert seed_test(monkeypatch, record(0.9931)) == [("gate_run", ["8k", 0])]  # accuracy later
    with pytest.raises(pytest.fail.Exception, match="seed 0: trained 16 epochs"):
        seed_test(monkeypatch, record(0.9950, epochs=16))


def test_the_verdict_over_the_seeds_decides_the_slow_tier(monkeypatch, tmp_path):
    from . import conftest

    monkeypatch.setattr(paths, "RUNS", tmp_path)
    for seed, acc in enumerate((0.9941, 0.9935)):
        save(runfolder.gate_folder(PROFILE.name, seed, paths.RUNS), record(acc, seed=seed))
    options = {"--profile": "8k", "--seeds": "0,1"}
    config = SimpleNamespace(getoption=options.get, stash={})
    assert conftest.session_verdicts(config, {"8k": [0]}) == []  # seed 1 did not pass: no verdict
    (judged,) = conftest.session_verdicts(config, {"8k": [1, 0]})
    assert judged.failures == [
        "mean of 2 seeds: final-epoch test accuracy 99.38% is below the 99.40% threshold of "
        "profile 8k by 0.02 points"
    ]
    assert "2 seeds: **FAIL**" in (tmp_path / "gate-8k.md").read_text()


def passing_runs(folder, seeds=(0,), gate=None):
    """A run of each profile (in pyproject.toml, or gate) and seed, within its budget."""
    for p in (gate or profiles.load()).profiles.values():
        for seed in seeds:
            run = record(max(0.995, p.min_accuracy), seed=seed, profile=p.name, model=p.model,
                         parameters=p.max_params - 1)  # fmt: skip
            save(folder / f"gate-{p.name}-seed{seed}", run)


def ci_verdict(folder, *argv) -> int:
    """The CI verdict job's command on folder: its exit status (0 is a green required check)."""
    with pytest.raises(SystemExit) as exit:
        verdict.main([str(folder), "--seeds", "0,1", *argv])
    return exit.value.code


SUCCESS = {"result": "success"}


@pytest.mark.parametrize(
    "gate_job, status",
    [("success", 0), ("failure", 1), ("cancelled", 1), ("skipped", 1)],
)
def test_the_required_check_is_green_only_when_every_gate_job_succeeded(tmp_path, gate_job, status):
    passing_runs(tmp_path, seeds=(0, 1))  # every run there and passing
    jobs = json.dumps({"seeds": SUCCESS, "gate": {"result": gate_job}})
    assert ci_verdict(tmp_path, "--jobs", jobs) == status


def test_a_dead_seed_job_or_a_missing_profile_fails_the_verdict(tmp_path, capsys):
    passing_runs(tmp_path, seeds=(0,))  # seed 1's job died before uploading anything
    assert ci_verdict(tmp_path) == 1
    assert "- **FAIL**: 8k seed 1: no finished run" in capsys.readouterr().out
    (tmp_path / "gate-25k-seed0" / "metrics.json").unlink()
    assert ci_verdict(tmp_path, "--seeds", "0") == 1


def test_a_seeds_job_that_failed_leaves_a_failing_verdict_not_a_skipped_one(tmp_path, capsys):
    jobs = json.dumps({"seeds": {"result": "failure"}, "gate": {"result": "skipped"}})
    assert ci_verdict(tmp_path, "--jobs", jobs) == 1
    out = capsys.readouterr().out
    assert "- **FAIL**: job seeds ended failure" in out
    assert "- **FAIL**: job gate ended skipped" in out


def test_a_rerun_job_replaces_its_own_earlier_attempt_and_joins_the_others(tmp_path, capsys):
    # Artifacts as gate-run.yml names them: a job's attempt 2 (re-run after a failure) beside
    # attempt 1 of the job that passed; the verdict takes each job's newest attempt.
    jobs = json.dumps({"seeds": SUCCESS, "gate": SUCCESS})
    passing_runs(tmp_path / "gate-gpu-7-this-a1-j1", seeds=(1,))
    save(tmp_path / "gate-gpu-7-this-a1-j0" / "gate-8k-seed0", record(0.990, seed=0))
    passing_runs(tmp_path / "gate-gpu-7-this-a2-j0", seeds=(0,))
    assert ci_verdict(tmp_path, "--jobs", jobs) == 0
    # Without the re-run, the failing first attempt is what is judged.
    shutil.rmtree(tmp_path / "gate-gpu-7-this-a2-j0")
    capsys.readouterr()
    assert ci_verdict(tmp_path, "--jobs", jobs) == 1
    out = capsys.readouterr().out
    assert "- **FAIL**: 25k seed 0: no finished run" in out and "| 0 | 99.00% (under) |" in out


def test_every_run_must_be_of_the_tree_the_change_has(tmp_path, capsys):
    passing_runs(tmp_path, seeds=(0, 1))
    shutil.rmtree(tmp_path / "gate-8k-seed1")
    save(tmp_path / "gate-8k-seed1", record(0.995, seed=1, key="a" * 64))
    assert ci_verdict(tmp_path, "--tree", "b" * 64) == 1
    out = capsys.readouterr().out
    tree = f"trained by a checkout of tree key {'a' * 64}, not this change's"
    assert f"- **FAIL**: 8k seed 1: {tree}" in out
    assert "- **FAIL**: 8k seed 0: trained by a checkout of tree key None" in out


def test_reused_runs_are_judged_on_the_seeds_asked_and_said_to_be_mains(tmp_path, capsys):
    passing_runs(tmp_path, seeds=(0, 1, 2, 3))  # main's stored reference: more seeds than ci
    jobs = json.dumps({"seeds": SUCCESS, "gate": {"result": "skipped"}})
    assert ci_verdict(tmp_path, "--jobs", jobs, "--reused") == 0
    out = capsys.readouterr().out
    assert "Nothing that decides training changed" in out and "2 seeds: pass" in out
    assert "| `8k` | pass | mean 99.500% of 2 seeds | >= 99.40% | none: these are main's" in out
    assert ci_verdict(tmp_path, "--jobs", jobs) == 1  # without --reused, a skipped gate fails


def test_main_keeps_its_runs_to_store_only_when_they_pass(tmp_path):
    passing_runs(tmp_path / "this" / "gate-gpu-7-this-a1-j0", seeds=(0, 1))
    assert ci_verdict(tmp_path / "this", "--keep", str(tmp_path / "kept")) == 0
    kept = sorted(p.name for p in (tmp_path / "kept").iterdir())
    assert kept == ["gate-25k-seed0", "gate-25k-seed1", "gate-8k-seed0", "gate-8k-seed1"]
    assert runfolder.load_record(tmp_path / "kept" / "gate-8k-seed1").seed == 1
    save(tmp_path / "failing" / "gate-8k-seed0", record(0.990, seed=0))
    passing_runs(tmp_path / "failing", seeds=(1,))
    assert ci_verdict(tmp_path / "failing", "--keep", str(tmp_path / "not")) == 1
    assert not (tmp_path / "not").exists()


def test_a_pull_request_is_judged_by_the_base_branchs_budgets(tmp_path, capsys):
    passing_runs(tmp_path / "runs", seeds=(0, 1))
    base = tmp_path / "base.toml"
    stricter = paths.PYPROJECT.read_text().replace("min_accuracy = 0.994", "min_accuracy = 0.996")
    base.write_text(stricter)
    change = ("--change-budgets", str(paths.PYPROJECT))
    assert ci_verdict(tmp_path / "runs", "--budgets", str(base), *change) == 1  # 99.50% < 99.60%
    out = capsys.readouterr().out
    assert "this change moves min_accuracy of profile 8k from 0.996 to 0.994" in out
    base.write_text(paths.PYPROJECT.read_text())
    assert ci_verdict(tmp_path / "runs", "--budgets", str(base), *change) == 0
    assert "this change moves" not in capsys.readouterr().out


def test_a_profile_a_pull_request_adds_is_judged_by_its_own_budget(tmp_path, capsys, monkeypatch):
    ours = tmp_path / "pyproject.toml"
    # A third profile splits the regression check's 1% three ways: ci needs 28 seeds for its power.
    more = paths.PYPROJECT.read_text().replace("24, 25,\n]", "24, 25, 26, 27,\n]")
    ours.write_text(more + textwrap.dedent("""
        [tool.gate.profiles.added]
        model = "Net"
        max_params = 4000
        max_epochs = 15
        min_accuracy = 0.99
    """))  # fmt: skip
    monkeypatch.setattr(paths, "PYPROJECT", ours)
    passing_runs(tmp_path / "runs", seeds=(0, 1), gate=profiles.load(ours))
    judged = ("--budgets", str(paths.ROOT / "pyproject.toml"), "--change-budgets", str(ours))
    assert ci_verdict(tmp_path / "runs", *judged) == 0
    out = capsys.readouterr().out
    assert "this change adds profile added, judged by its own budget (main has no reference" in out
    assert "(profile added), 2 seeds: pass" in out
    # Its own budget, not a pass for want of one: over 4,000 parameters fails.
    (tmp_path / "runs" / "gate-added-seed0").rename(tmp_path / "gate-added-seed0")
    save(tmp_path / "runs" / "gate-added-seed0", record(seed=0, profile="added", parameters=4_000))
    assert ci_verdict(tmp_path / "runs", *judged) == 1
    assert "seed 0: 4,000 trainable parameters; profile added allows fewer than 4,000" in (
        capsys.readouterr().out
    )


def test_several_seeds_name_each_broken_run_and_every_device():
    runs = [record(seed=0), record(seed=1, model="Net25k"),
            record(seed=2, device="Other CPU", torch="2.11.0")]  # fmt: skip
    text = markdown.verdict(judging.judge(PROFILE, runs))
    assert "- seed 1: trained Net25k, not Net" in text
    assert "Ran on Test CPU (cpu), torch 2.14.1; Other CPU (cpu), torch 2.11.0." in text


def test_a_mean_just_under_the_bar_never_reads_as_the_bar(tmp_path):
    runs = [record(acc, seed=s) for s, acc in enumerate((0.9939, 0.9940, 0.9940))]  # 99.3967%
    text = markdown.verdict(judging.judge(PROFILE, runs))
    assert "| mean final-epoch test accuracy | 99.397% | >= 99.40% | **FAIL** |" in text


def test_identical_seeds_say_their_spread_cannot_be_estimated():
    runs = [record(0.9950, seed=s) for s in (0, 1, 2)]
    text = markdown.verdict(judging.judge(PROFILE, runs))
    assert "0.000 points (identical runs: no spread to estimate)" in text
    assert "| 99% lower bound on the mean (one-sided, t) | n/a |" in text
    assert "| P(one more run < threshold), normal fit | n/a |" in text


@pytest.mark.parametrize(
    "main_pairs, why",
    [
        (predictions([])[:, :9_000], "main's predictions cover 9,000 images, this change's 10,000"),
        (np.roll(predictions([]), 1, axis=1), "main's predictions are of other test labels"),
        (predictions([]).astype(np.int64), "is not 2 rows of uint8 test labels and predictions"),
        (b"\x93NUMPY truncated", "is unreadable"),
        (b"", "is unreadable"),
    ],
    ids=["shorter", "shifted labels", "int64", "truncated", "empty"],
)
def test_anything_wrong_with_mains_predictions_is_a_sentence(tmp_path, main_pairs, why):
    save(tmp_path / "new" / "gate-8k-seed0", record(0.9950))
    main = save(tmp_path / "main" / "gate-8k-seed0", record(0.9950), kept=False).folder
    if isinstance(main_pairs, bytes):
        (main / "test_predictions.npy").write_bytes(main_pairs)
    else:
        np.save(main / "test_predictions.npy", main_pairs, allow_pickle=False)
    text = verdict.comparison(verdict.gather(tmp_path / "new"), tmp_path / "main")
    assert "No paired comparison for 8k seed 0: " in text and why in text, text


def regression(runs: list, main: Path, **sentences) -> tuple[bool, str]:
    """The regression check of runs against main's, by this checkout's budgets: passed, and its
    section of the summary."""
    found = verdict.regression(runs, main, profiles.load(), **sentences)
    return found.passed, found.text


def test_hsus_test_by_hand():
    # new 1, 2, 3 and old 2, 3, 4, 5: change -1.5, variances 1 and 5/3, Welch's standard error
    # sqrt(1/3 + 5/12) = sqrt(0.75) = 0.8660, t = -1.7321 on min(3, 4) - 1 = 2 degrees of freedom;
    # for 2 the t distribution has a closed form: 1/2 + t / (2 sqrt(2 + t^2)) = 0.11270.
    t = stats.hsu([1, 2, 3], [2, 3, 4, 5])
    assert t.change == -1.5 and t.p_drop == pytest.approx(0.11270, abs=1e-5)
    assert t.se == pytest.approx(0.75**0.5) and t.df == 2
    assert t.interval()[1] + 1.5 == pytest.approx(stats.t_quantile(0.975, t.df) * t.se)
    with pytest.raises(ValueError):  # one seed against one cannot be judged at all
        stats.hsu([99.5], [99.5])


def test_the_regression_check_fails_on_a_drop_in_the_recipe(tmp_path):
    for seed, acc in enumerate((0.9950, 0.9955, 0.9945, 0.9952, 0.9951, 0.9949)):
        save(tmp_path / "main" / f"gate-8k-seed{seed}", record(acc, seed=seed))
    same = [record(acc, seed=s) for s, acc in enumerate((0.9951, 0.9949, 0.9954))]
    passed, text = regression(same, tmp_path / "main", about="Main's run 7.")
    assert passed and "| 8k | 99.513% (3) | 99.503% (6) |" in text
    assert (
        "Main's run 7. Main's reference ran on Test CPU (cpu), torch 2.14.1, trained by commit "
        "unknown." in text
    )
    worse = [record(acc, seed=s) for s, acc in enumerate((0.9925, 0.9928, 0.9922))]
    passed, text = regression(worse, tmp_path / "main")
    assert not passed and "**FAIL**: the recipe got worse" in text


def test_without_mains_seeds_the_regression_check_says_why_and_fails(tmp_path):
    passed, text = regression([record()], tmp_path / "nowhere")
    assert not passed and "**FAIL**: no reference from main to compare with. The folder" in text
    passed, text = regression([record()], tmp_path / "nowhere", note="Key K not stored.")
    assert not passed and "compare with. Key K not stored." in text
    save(tmp_path / "main" / "gate-8k-seed0", record())
    passed, text = regression([record(seed=0), record(seed=1)], tmp_path / "main")
    cannot = "**FAIL**: 8k: cannot be compared, a side with fewer than two seeds"
    assert not passed and f"{cannot} (2 seeds here, 1 in main's reference)." in text
    passed, text = regression([record(seed=0)], tmp_path / "main")
    assert not passed and "(1 seeds here, 1 in main's reference)" in text


def test_a_profile_of_the_budgets_missing_on_either_side_fails_and_an_added_one_is_said(tmp_path):
    for seed in range(3):
        save(tmp_path / "main" / f"gate-8k-seed{seed}", record(0.995, seed=seed))
    only_25k = [record(0.996, seed=s, profile="25k") for s in range(3)]
    passed, text = regression(only_25k, tmp_path / "main")
    assert not passed and "**FAIL**: 8k: cannot be compared" in text and "(0 seeds here" in text
    assert "**FAIL**: 25k: cannot be compared" in text and "0 in main's reference" in text
    added = [replace(r, profile="added") for r in only_25k]
    both = [record(0.995, seed=s) for s in range(3)] + added
    passed, text = regression(both, tmp_path / "main")
    assert passed and "Added: added by this change, so main has no reference for it yet." in text


ARTIFACT = "gate-gpu-7-seeds0,1,2,3"  # a folder as gate-run.yml downloads main's artifact into


def test_runs_of_another_torch_are_compared_and_of_another_device_kind_fail(tmp_path):
    for seed in range(3):
        run = record(0.9960, seed=seed, torch="2.11.0")
        save(tmp_path / "main" / ARTIFACT / f"gate-8k-seed{seed}", run)
    lower = [record(0.9930, seed=s) for s in range(3)]
    passed, text = regression(lower, tmp_path / "main")
    assert not passed and "**FAIL**: the recipe got worse" in text
    assert (
        "8k: this change ran torch 2.14.1, main's reference torch 2.11.0; the comparison "
        "includes that move."
    ) in text
    gpu = [replace(r, device_type="cuda") for r in lower]
    passed, text = regression(gpu, tmp_path / "main")
    assert (
        not passed
        and (
            "**FAIL**: 8k: cannot be compared, this change ran on cuda and main's reference on cpu"
        )
        in text
    )


def test_damage_on_mains_side_drops_that_run_with_a_sentence(tmp_path):
    main = tmp_path / "main"
    for seed in range(4):
        save(main / f"gate-8k-seed{seed}", record(0.995, seed=seed))
    save(main / "z-again" / "gate-8k-seed0", record(0.990, seed=0))  # a seed twice
    data = json.loads((main / "gate-8k-seed1" / "metrics.json").read_text())
    (main / "gate-8k-seed1" / "metrics.json").write_text(
        json.dumps({**data, "final_test_acc": "x"})
    )
    (main / "gate-8k-seed2" / "metrics.json").write_text(json.dumps({**data, "history": []}))
    passed, text = regression([record(0.995, seed=s) for s in range(3)], main)
    assert passed and "| 8k | 99.500% (3) | 99.500% (2) |" in text  # seeds 0 and 3 of main
    assert text.count("Dropped from main's reference:") == 3
    assert "8k seed 0 again, in" in text and "Traceback" not in text


def test_too_few_seeds_for_the_regression_check_say_so_in_one_line(tmp_path):
    for seed in range(48):
        save(tmp_path / "main" / f"gate-8k-seed{seed}", record(0.995, seed=seed))
    new = [record(0.995, seed=s) for s in range(3)]
    passed, text = regression(new, tmp_path / "main")
    line = next(line for line in text.splitlines() if line.startswith("Too few seeds"))
    assert passed and line == (
        "Too few seeds: 3 seeds here and 48 on main catch a 0.05-point drop with "
        f"{rates.blocks(3, 48, 1):.0%} chance at a spread of 0.055 points, under the 80% this "
        f"check is sized for ({rates.least_seeds(48, 1)} seeds here would reach it)."
    )


def without_25k(text: str) -> str:
    return text[: text.index("[tool.gate.profiles.25k]")] + text[text.index("[tool.pytest") :]


def retired_25k(text: str) -> str:
    return text.replace("[tool.gate.profiles.25k]\n", "[tool.gate.profiles.25k]\nretired = true\n")


def test_a_profile_is_removed_by_retiring_it_first(tmp_path, capsys):
    base, change = tmp_path / "base.toml", tmp_path / "change.toml"
    base.write_text(paths.PYPROJECT.read_text())
    change.write_text(without_25k(paths.PYPROJECT.read_text()))
    passing_runs(tmp_path / "runs", seeds=(0, 1), gate=profiles.load(change))
    judged = ("--budgets", str(base), "--change-budgets", str(change))
    assert ci_verdict(tmp_path / "runs", *judged) == 1
    assert (
        "this change removes profile 25k, which the base has not retired: retire it first "
        "(retired = true in its budget), then remove it"
    ) in capsys.readouterr().out
    base.write_text(retired_25k(paths.PYPROJECT.read_text()))  # the first change, merged
    assert profiles.load(base).profiles["25k"].retired
    assert ci_verdict(tmp_path / "runs", *judged) == 0, capsys.readouterr().out


def test_a_retired_profile_the_change_no_longer_trains_is_not_compared(tmp_path, monkeypatch):
    for seed in range(3):
        save(tmp_path / "main" / f"gate-8k-seed{seed}", record(0.995, seed=seed))
        save(tmp_path / "main" / f"gate-25k-seed{seed}", record(0.996, seed=seed, profile="25k"))
    runs = [record(0.995, seed=s) for s in range(3)]
    passed, text = regression(runs, tmp_path / "main")
    assert not passed and "**FAIL**: 25k: cannot be compared" in text
    retired = tmp_path / "pyproject.toml"
    retired.write_text(retired_25k(paths.PYPROJECT.read_text()))
    monkeypatch.setattr(paths, "PYPROJECT", retired)
    passed, text = regression(runs, tmp_path / "main")
    assert passed and "25k: retired on main, and this change no longer trains it." in text


@pytest.mark.parametrize("jobs", ["null", "[1]", '{"gate": 1}', "{}", '{"gate": {}}', "{nope", ""])
def test_a_needs_context_of_another_shape_is_refused_in_one_line(tmp_path, capsys, jobs):
    passing_runs(tmp_path, seeds=(0, 1))
    assert ci_verdict(tmp_path, "--jobs", jobs) == 2  # never "nothing to check"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not GitHub's needs context" in err, err


def test_a_pull_requests_summary_gives_every_decision_and_change_in_its_first_ten_lines(
    tmp_path, capsys
):
    # The shape CI judges: the ci seeds of each profile against main's reference seeds.
    gate = profiles.load()
    for side, seeds, accuracy in (("main", "reference", {"8k": 0.9950, "25k": 0.9962}),
                                  ("this", "ci", {"8k": 0.9938, "25k": 0.9963})):  # fmt: skip
        for name, profile in gate.profiles.items():
            for seed in gate.seeds(seeds):
                jitter = (seed % 5 - 2) / 10_000  # a spread of a few images
                run = record(accuracy[name] + jitter, seed=seed, profile=name, model=profile.model,
                             parameters=profile.max_params - 1)  # fmt: skip
                save(tmp_path / side / f"gate-{name}-seed{seed}", run)
    with pytest.raises(SystemExit) as exit:
        verdict.main([str(tmp_path / "this"), "--main", str(tmp_path / "main")])
    head = capsys.readouterr().out.splitlines()[:10]
    assert exit.value.code == 1 and head[0] == "## Model gate: **FAIL**", head
    eight, twenty_five = (line for line in head if line.startswith("| `"))
    n = len(gate.seeds("ci"))
    assert eight.startswith(f"| `8k` | **FAIL** | mean 99.379% of {n} seeds, 99% lower")
    assert eight.endswith("| **FAIL**: worse |") and "-0.120 points (95%: " in eight
    assert twenty_five.startswith(f"| `25k` | pass | mean 99.629% of {n} seeds, 99% lower")
    assert twenty_five.endswith("| pass |") and "+0.010 points (95%: " in twenty_five
    reasons = [line for line in head if line.startswith("- **FAIL**: ")]
    bound = f"99% lower bound on the mean of {n} seeds"
    assert reasons[0].startswith(f"- **FAIL**: profile 8k: {bound}")
    assert reasons[1].startswith("- **FAIL**: 8k: the recipe got worse, -0.120 points"), head
