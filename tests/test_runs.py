"""A run never loses or mixes results: it claims its folder, writes files whole, and every bad
input ends in one line and a clear exit status, never a traceback."""

import multiprocessing
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

import train
from mnist_gate import data, paths, runfolder, verdict
from mnist_gate.paths import RunFolderError
from mnist_gate.runfolder import INCOMPLETE

from .helpers import smoke, unevaluated, writable_copy


def run_main(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit:
        train.main(argv)
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return exit.value.code, err


# The same-second race: two processes, released together by a barrier, claim a folder.


def _claim(barrier, results, runs, out, stamp):
    paths.RUNS = runs
    time.strftime = lambda *_: stamp  # both runs start "in the same second"
    barrier.wait()
    try:
        results.put(str(runfolder.claim(out, "Net")))
    except RunFolderError as err:
        results.put(f"refused: {err}")


def race(tmp_path, out) -> list[str]:
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    args = (barrier, results, tmp_path / "runs", out, "20260101-000000")
    workers = [ctx.Process(target=_claim, args=args) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    return sorted(results.get(timeout=5) for _ in workers)


def test_two_runs_in_the_same_second_get_two_folders(tmp_path):
    first, second = race(tmp_path, None)
    assert first.endswith("net-20260101-000000") and second.endswith("net-20260101-000000-2")


def test_two_runs_given_the_same_out_cannot_both_have_it(tmp_path):
    claimed, refused = race(tmp_path, tmp_path / "shared")
    assert claimed == str(tmp_path / "shared")
    assert refused.startswith("refused:") and "is taken by another run" in refused


def test_an_unwritable_out_fails_before_training(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    trained = []
    monkeypatch.setattr(train, "train_step", lambda *args: trained.append(args))
    code, err = run_main(["--out", str(blocker / "run"), "--limit", "256"], capsys)
    assert code == 2 and "cannot create --out" in err and not trained


def test_a_read_only_runs_folder_fails_before_training(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(paths, "RUNS", blocker / "runs")
    code, err = run_main(["--limit", "256"], capsys)
    assert code == 2 and "cannot create" in err


@pytest.mark.parametrize("argv", [["--epochs", "1"], ["--epochs", "2", "--warmup", "0.99"]])
def test_short_runs_and_long_warm_ups_finish(tmp_path, argv, monkeypatch, capsys):
    monkeypatch.setattr(train, "evaluate", unevaluated)
    train.main(
        [*argv, "--limit", "100", "--out", str(tmp_path / "run"), "--no-progress", "--no-reports"]
    )
    assert "final test accuracy" in capsys.readouterr().out
    assert not (tmp_path / "run" / INCOMPLETE).exists()


def test_the_schedule_never_divides_by_zero():
    for total, warmup in ((1, 0.0), (1, 0.9), (4, 0.99), (10, 0.25)):
        factor = train.one_cycle(total, warmup)
        values = [factor(step) for step in range(total + 2)]
        assert all(0 <= v <= 1 for v in values) and values[total] == 0


def test_a_damaged_deflate_stream_is_a_one_line_data_error(tmp_path):
    writable_copy(data.DATA_DIR / "MNIST", tmp_path / "MNIST")
    path = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[14] ^= 0xFF
    path.write_bytes(raw)
    with pytest.raises(data.DataError, match=r"t10k-labels-idx1-ubyte.gz is unreadable"):
        data.load_mnist(tmp_path)


def test_an_unreadable_data_folder_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "is_file", denied)
    code, err = run_main(["--limit", "256", "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and "cannot look inside" in err and "Permission denied" in err


def test_a_stalled_download_gives_up_with_one_line(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    server = socket.create_server(("127.0.0.1", 0))
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    port = server.getsockname()[1]
    monkeypatch.setattr(MNIST, "mirrors", [f"http://127.0.0.1:{port}/"])
    started = time.monotonic()
    with pytest.raises(data.DataError, match="the download failed"):
        data.download(tmp_path, timeout=1)
    assert time.monotonic() - started < 20
    server.close()


def test_an_interrupt_while_saving_leaves_no_truncated_checkpoint(tmp_path, monkeypatch):
    def interrupted(obj, path):
        Path(path).write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    monkeypatch.setattr(train, "evaluate", unevaluated)
    with pytest.raises(KeyboardInterrupt):
        train.train(smoke(tmp_path, limit=256))
    out = tmp_path / "run"
    assert sorted(p.name for p in out.iterdir()) == [INCOMPLETE]
    with pytest.raises(RunFolderError, match="holds one that never finished"):
        runfolder.claim(out, "Net")


def test_a_finished_run_holds_everything_and_no_marker(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "evaluate", unevaluated)
    train.train(smoke(tmp_path, limit=256))
    saved = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert saved == ["metrics.json", "model.pt", "test_predictions.npy"]


def test_a_corrupt_metrics_file_is_a_one_line_error(tmp_path, capsys):
    run = tmp_path / "gate-8k"
    run.mkdir()
    (run / "metrics.json").write_text('{"model": "Net", "final_te')
    with pytest.raises(SystemExit) as exit:
        verdict.main([str(tmp_path)])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.count("\n") == 1 and "is unreadable" in err, err
    # As main's result it only costs the comparison, never the job summary.
    assert "Dropped from main's reference:" in verdict.comparison([], tmp_path)


def test_copies_of_a_read_only_checkout_are_writable(tmp_path):
    source = tmp_path / "checkout"
    (source / "raw").mkdir(parents=True)
    (source / "raw" / "file").write_text("data")
    (source / "raw" / "file").chmod(0o444)
    (source / "raw").chmod(0o555)
    writable_copy(source, tmp_path / "copy")
    (source / "raw").chmod(0o755)
    assert (tmp_path / "copy" / "raw").stat().st_mode & 0o200
    assert (tmp_path / "copy" / "raw" / "file").stat().st_mode & 0o200


def test_a_runs_folder_that_is_a_broken_link_is_one_line(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    runs.symlink_to(tmp_path / "gone")
    monkeypatch.setattr(paths, "RUNS", runs)
    with pytest.raises(RunFolderError, match="it is a file or a broken link"):
        runfolder.claim(None, "Net")


def test_an_out_that_is_a_file_is_one_line_and_left_alone(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("someone's notes")
    code, err = run_main(["--out", str(taken), "--limit", "256"], capsys)
    assert code == 2 and f"cannot create --out {taken}: it is a file or a broken link" in err
    assert taken.read_text() == "someone's notes"
