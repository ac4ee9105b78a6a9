"""The step timer refuses bad values in one line, and times the networks in turns."""

import re

import pytest

from scripts import steptime


@pytest.mark.parametrize(
    "argv, message",
    [
        (["Nope"], "--model 'Nope' is not a network in model.py"),
        (["Net", "--rounds", "0"], "argument --rounds: must be positive, got 0"),
        (["Net", "Net"], "a network is named twice"),
        (["Net", "--threads", "-1"], "--threads must not be negative"),
        ([], "the following arguments are required: MODEL"),
    ],
)
def test_bad_values_exit_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit:
        steptime.main(argv)
    err = capsys.readouterr().err
    assert exit.value.code == 2
    assert err.count("\n") == 1 and message in err, err


def test_the_networks_take_turns(monkeypatch, capsys):
    turns = []

    def timer(cfg, *args):
        def run(steps):
            turns.append((cfg.model, steps))
            return 1.0

        return run

    monkeypatch.setattr(steptime, "step_timer", timer)
    steptime.main(["Net", "Net25k", "--rounds", "3", "--steps", "7"])
    warmup = [("Net", steptime.WARMUP_STEPS), ("Net25k", steptime.WARMUP_STEPS)]
    assert turns == warmup + [("Net", 7), ("Net25k", 7)] * 3


def test_real_steps_print_each_median_and_the_ratio_to_the_first(capsys):
    steptime.main(["Net", "Net25k", "--rounds", "2", "--steps", "1", "--threads", "1"])
    out = capsys.readouterr().out.splitlines()
    assert "1 threads" in out[0] and "median over 2 rounds of 1 steps, batch 256" in out[1]
    assert re.fullmatch(r"  Net +\d+\.\d\d ms/step", out[2]), out[2]
    assert re.fullmatch(r"  Net25k +\d+\.\d\d ms/step  \d+\.\d\dx Net's", out[3]), out[3]
