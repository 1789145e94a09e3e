"""No lost or mixed-up run (issue 21, points 4, 5, 6, 12, 31): the run lock, --overwrite that keeps the old
run until the new one has a checkpoint, test-only runs beside a training run, results outside the data,
stale temporaries."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from biapy_cls.cli import main
from biapy_cls.run_safety import RunLock
from tests.conftest import digits_config, write_yaml

pytestmark = pytest.mark.slow  # each test trains (or tests) once on the small digits, 1 epoch


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` -> the hash of its bytes."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_digits_dir) -> tuple[Path, Path]:
    """A finished 1-epoch run 'j' (run id 1) with its own copy of the data: (config, result_dir)."""
    root = tmp_path_factory.mktemp("trained")
    data = root / "data"
    shutil.copytree(small_digits_dir, data)
    config = write_yaml(root / "c.yaml", digits_config(data, TRAIN={"EPOCHS": 1}))
    assert main(["--config", str(config), "--result_dir", str(root / "out"), "--name", "j"]) == 0
    return config, root / "out"


@pytest.fixture
def job(trained, tmp_path) -> tuple[Path, Path]:
    """A private copy of the trained job and its data, so that tests may damage it."""
    config, out = trained
    shutil.copytree(out, tmp_path / "out")
    shutil.copytree(config.parent / "data", tmp_path / "data")
    cfg = digits_config(tmp_path / "data", TRAIN={"EPOCHS": 1})
    return write_yaml(tmp_path / "c.yaml", cfg), tmp_path / "out"


def flat(text: str) -> str:
    return " ".join(text.split())


def test_a_second_run_with_the_same_name_is_refused_while_the_first_runs(job, run_biapy):
    config, out = job
    before = _snapshot(out)
    lock = RunLock(out / "j", "j_1")  # what the first run holds while it trains
    lock.acquire()
    try:
        code, _, err = run_biapy("--config", config, "--result_dir", out, "--name", "j", "--overwrite")
    finally:
        lock.release()
    assert code == 2
    assert f"Run j_1 in '{out / 'j'}' is being written right now by process {os.getpid()}" in flat(err)
    assert "another --run_id or --name" in flat(err)
    assert _snapshot(out) == before


def test_a_lock_left_by_a_dead_process_does_not_block(job, run_biapy):
    config, out = job
    (out / "j" / ".j_2.lock").write_text("process 999999 (started long ago)")  # its process is gone: no flock
    code, _, err = run_biapy("--config", config, "--result_dir", out, "--name", "j", "--run_id", "2")
    assert code == 0, err
    assert not (out / "j" / ".j_2.lock").exists()  # released at the end


def test_a_failed_overwrite_keeps_the_old_run(job, run_biapy):
    """A truncated PNG found while loading used to leave the old results deleted and nothing new."""
    config, out = job
    before = _snapshot(out)
    victim = sorted((config.parent / "data" / "train").glob("*/*.png"))[-1]
    victim.write_bytes(victim.read_bytes()[:40])
    code, _, err = run_biapy("--config", config, "--result_dir", out, "--name", "j", "--overwrite")
    assert code == 2 and "Cannot read the image" in flat(err) and victim.name in err
    assert _snapshot(out) == before
    assert not (out / "j" / ".overwritten-j_1").exists()


def test_a_successful_overwrite_replaces_the_run_and_drops_the_safety_copy(job, run_biapy):
    config, out = job
    old = (out / "j" / "results" / "j_1" / "run_info.json").read_text()
    code, _, err = run_biapy("--config", config, "--result_dir", out, "--name", "j", "--overwrite")
    assert code == 0, err
    assert (out / "j" / "results" / "j_1" / "run_info.json").read_text() != old
    assert not (out / "j" / ".overwritten-j_1").exists()


def test_a_test_only_run_into_the_trained_job_keeps_what_training_wrote(job, run_biapy):
    config, out = job
    results = out / "j" / "results" / "j_1"
    kept = {p: p.read_bytes() for p in [out / "j" / "config_files" / "c_1.yaml", results / "run_info.json",
                                        out / "j" / "logs" / "j_1_training_log.json"]}
    code, _, err = run_biapy("--config", config, "--result_dir", out, "--name", "j", "--overwrite",
                             "TRAIN.ENABLE", "False", "MODEL.LOAD_CHECKPOINT", "True")
    assert code == 0, err
    for path, content in kept.items():
        assert path.read_bytes() == content, path
    info = json.loads((results / "test_run_info.json").read_text())
    assert info["status"] == "finished" and "TRAIN.ENABLE False" in info["command"]
    assert (out / "j" / "config_files" / "c_1_test.yaml").is_file()
    assert "Training" in (results / "report.html").read_text()  # the training curves stay in the report
    assert json.loads(kept[results / "run_info.json"])["status"] == "finished"


@pytest.mark.parametrize("where, key", [("data/train", "DATA.TRAIN.PATH"), ("data/test/0_zero", "DATA.TEST.PATH")])
def test_a_result_folder_inside_the_data_is_refused(job, run_biapy, where, key):
    config, _ = job
    result_dir = config.parent / where
    before = _snapshot(config.parent / "data")
    code, _, err = run_biapy("--config", config, "--result_dir", result_dir, "--name", "j")
    assert code == 2 and f"inside {key}" in flat(err) and "outside the data folders" in flat(err)
    assert _snapshot(config.parent / "data") == before


def test_stale_checkpoint_temporaries_are_removed_at_start(job, run_biapy):
    config, out = job
    checkpoints = out / "j" / "checkpoints"
    dead = checkpoints / ".j_2-checkpoint-last.pth.999999.tmp"
    old = checkpoints / ".j_2-checkpoint-last.pth.abcd1234.tmp"
    fresh = checkpoints / ".j_2-checkpoint-last.pth.efgh5678.tmp"
    for path in (dead, old, fresh):
        path.write_bytes(b"x" * 1000)
    os.utime(old, (1, 1))
    code, _, err = run_biapy("--config", config, "--result_dir", out, "--name", "j", "--run_id", "2")
    assert code == 0, err
    assert not dead.exists() and not old.exists()
    assert fresh.exists()  # could belong to a live write; removed once old


def test_resume_with_renamed_class_folders_is_refused_with_both_lists(job, run_biapy):
    config, out = job
    before = _snapshot(out)
    (config.parent / "data" / "train" / "0_zero").rename(config.parent / "data" / "train" / "z_zero")
    code, _, err = run_biapy("--config", config, "--result_dir", out, "--name", "j", "--resume", "TRAIN.EPOCHS", "2",
                             "TEST.ENABLE", "False")
    assert code == 2
    assert "was trained on other class names: checkpoint [0_zero, 1_one" in flat(err)
    assert "data [1_one, 2_two" in flat(err) and "z_zero]" in flat(err) and "swap class meanings" in flat(err)
    assert _snapshot(out) == before


def test_fine_tuning_on_reordered_classes_is_refused(job, run_biapy):
    config, out = job
    train = config.parent / "data" / "train"
    (train / "0_zero").rename(train / "9_zero")
    (train / "9_nine").rename(train / "0_nine")
    checkpoint = out / "j" / "checkpoints" / "j_1-checkpoint-best.pth"
    code, _, err = run_biapy("--config", config, "--result_dir", out, "--name", "ft", "PATHS.CHECKPOINT_FILE",
                             checkpoint, "MODEL.LOAD_CHECKPOINT", "True", "TEST.ENABLE", "False")
    assert code == 2 and "was trained on other class names" in flat(err)
    assert not (out / "ft").exists()


def test_resume_with_another_architecture_names_the_setting(job, run_biapy):
    config, out = job
    before = _snapshot(out)
    code, _, err = run_biapy("--config", config, "--result_dir", out, "--name", "j", "--resume", "TRAIN.EPOCHS", "2",
                             "MODEL.ARCHITECTURE", "efficientnet_b0")
    assert code == 2
    assert "--resume needs the same model as the checkpoint" in flat(err)
    assert "MODEL.ARCHITECTURE: checkpoint simple_cnn, now efficientnet_b0" in flat(err)
    assert len(err) < 1500 and "state_dict" not in err
    assert _snapshot(out) == before


def test_a_test_only_run_on_rgb_images_with_a_grey_checkpoint_says_how_to_convert(job, run_biapy):
    import numpy as np
    from PIL import Image

    config, out = job
    rgb = config.parent / "rgb_test" / "0_zero"
    rgb.mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(rgb / "x.png")
    checkpoint = out / "j" / "checkpoints" / "j_1-checkpoint-best.pth"
    code, _, err = run_biapy("--config", config, "--result_dir", out, "--name", "t", "TRAIN.ENABLE", "False",
                             "PATHS.CHECKPOINT_FILE", checkpoint, "DATA.TEST.PATH", rgb.parent)
    assert code == 2
    assert "The checkpoint was trained on images with 1 channel(s) (grey), but the test image" in flat(err)
    assert "has 3" in flat(err) and "convert them to grey" in flat(err) and "set the last value" not in flat(err)
    assert not (out / "t").exists()


def test_sigterm_becomes_an_interrupt_in_the_main_thread():
    import signal

    from biapy_cls.signals import Terminated, sigterm_as_interrupt

    with pytest.raises(Terminated), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        import time

        time.sleep(5)  # the handler raises before this ends
    assert signal.getsignal(signal.SIGTERM) is not None


def _hint(err: str) -> list[str]:
    """The command printed on the line after 'Continue with:' / 'to test:', as arguments after 'biapy'."""
    import shlex

    line = err.split("\n")[err.split("\n").index(next(x for x in err.split("\n") if x.rstrip().endswith(":"))) + 1]
    args = shlex.split(line.strip())
    assert args[0] == "biapy"
    return args[1:]


def test_sigterm_during_training_keeps_the_epoch_and_its_resume_hint_works(job, run_biapy, monkeypatch):
    from biapy_cls.engine import trainer
    from biapy_cls.signals import Terminated

    config, out = job
    real = trainer.train_one_epoch

    def terminated_at_second_epoch(setup, current):
        if current == 1:
            raise Terminated()  # what the SIGTERM handler raises
        return real(setup, current)

    monkeypatch.setattr(trainer, "train_one_epoch", terminated_at_second_epoch)
    code, _, err = run_biapy("--config", config, "--result_dir", out, "--name", "s", "TRAIN.EPOCHS", "2")
    assert code == 143
    assert "stopped by SIGTERM" in err and "Continue with:" in err
    assert json.loads((out / "s" / "results" / "s_1" / "run_info.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(trainer, "train_one_epoch", real)
    code, _, err2 = run_biapy(*_hint(err))
    assert code == 0, err2
    assert json.loads((out / "s" / "results" / "s_1" / "run_info.json").read_text())["status"] == "finished"


def test_ctrl_c_during_a_test_only_run_says_to_re_run_and_the_hint_works(job, run_biapy, monkeypatch):
    from biapy_cls import workflow

    config, out = job
    checkpoint = out / "j" / "checkpoints" / "j_1-checkpoint-best.pth"
    real = workflow.predict

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(workflow, "predict", interrupted)
    code, _, err = run_biapy("--config", config, "--result_dir", out, "--name", "t", "TRAIN.ENABLE", "False",
                             "PATHS.CHECKPOINT_FILE", checkpoint)
    assert code == 130
    assert "Only the test was running and nothing is lost" in err and "No epoch had completed" not in err
    monkeypatch.setattr(workflow, "predict", real)
    code, _, err2 = run_biapy(*_hint(err))
    assert code == 0, err2


def test_names_that_are_not_utf8_round_trip(job, run_biapy):
    """Logging printed '--- Logging error ---' and predictions.csv failed after training."""
    import pandas as pd

    config, out = job
    test = config.parent / "data" / "test"
    bad_class = os.fsdecode(b"9_nine\xff")
    (test / "9_nine").rename(test / bad_class)
    train = config.parent / "data" / "train"
    (train / "9_nine").rename(train / bad_class)
    victim = sorted((test / bad_class).glob("*.png"))[0]
    bad_file = os.fsdecode(b"img\xe9\xfe.png")
    victim.rename(test / bad_class / bad_file)
    code, stdout, err = run_biapy("--config", config, "--result_dir", out, "--name", "u")
    assert code == 0, err
    assert "Logging error" not in err + stdout  # logging reports its own failures on sys.stderr
    table = pd.read_csv(out / "u" / "results" / "u_1" / "predictions.csv", encoding_errors="surrogateescape")
    assert f"{bad_class}/{bad_file}" in table["filename"].tolist()
    assert bad_class in table["true_class_name"].tolist()
    assert "9_nine\\xff" in (out / "u" / "logs" / "u_1_log.txt").read_text()
