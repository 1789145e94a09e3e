"""Shared fixtures: real digits images written to folders, and running the CLI in-process."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    """Import a file of scripts/ as a module (they are not part of the package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory) -> Path:
    """The full digits dataset of `make demo`: 1437 training and 360 test 32x32 PNGs in 10 classes."""
    out = tmp_path_factory.mktemp("digits")
    assert load_script("make_example_data").main([str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def small_digits_dir(tmp_path_factory) -> Path:
    """30 real digits per class (24 train, 6 test): enough to run every code path in seconds."""
    out = tmp_path_factory.mktemp("small_digits")
    assert load_script("make_example_data").main([str(out), "--limit", "30"]) == 0
    return out


def digits_config(data: Path, **sections) -> dict:
    """A minimal valid config for the digits data; keyword arguments update whole sections."""
    cfg = {
        "PROBLEM": {"TYPE": "CLASSIFICATION", "NDIM": "2D"},
        "DATA": {
            "PATCH_SIZE": "(32, 32, 1)",
            "NORMALIZATION": {"TYPE": "div"},
            "TRAIN": {"PATH": str(data / "train")},
            "TEST": {"PATH": str(data / "test"), "LOAD_GT": True, "IN_MEMORY": True},
        },
        "MODEL": {"ARCHITECTURE": "simple_cnn"},
        "TRAIN": {"ENABLE": True, "EPOCHS": 2, "BATCH_SIZE": 32, "LR": 3e-3, "PATIENCE": -1},
        "TEST": {"ENABLE": True},
    }
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    return cfg


def write_yaml(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_config(run_biapy, tmp_path: Path, cfg: dict, *extra: str):
    """Run the CLI on `cfg` (written to tmp_path/config.yaml) as job 'job' under tmp_path/out."""
    config = write_yaml(tmp_path / "config.yaml", cfg)
    return run_biapy("--config", config, "--result_dir", tmp_path / "out", "--name", "job", *extra)


def check_user_error(result, *words: str) -> str:
    """A user error as a user sees it: exit code 2, one 'ERROR:' paragraph holding `words`, no traceback."""
    code, out, err = result
    assert code == 2, f"exit code {code}\n{out}\n{err}"
    assert "Traceback" not in out + err
    assert err.startswith("ERROR: ")
    message = " ".join(err.split())  # the paragraph, unwrapped
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return message


@pytest.fixture
def run_biapy(capsys):
    """Run `biapy ARGS` in this process; returns (exit code, stdout, stderr)."""
    from biapy_cls.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(autouse=True)
def fresh_logger():
    """Each test starts with the biapy_cls logger as a library user would find it (a CLI run earlier in
    the session leaves its console handler and propagate=False behind, which hides records from caplog)."""
    import logging

    yield
    logger = logging.getLogger("biapy_cls")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


def assert_self_contained(text: str) -> None:
    """No file, page or network resource referenced: every src is a data: URI, links stay in the page."""
    sources = re.findall(r"""\bsrc\s*=\s*["']?([^"'\s>]*)""", text, flags=re.I)
    assert all(s.startswith("data:image/png;base64,") for s in sources), sources
    links = re.findall(r"""\bhref\s*=\s*["']?([^"'\s>]*)""", text, flags=re.I)
    assert all(link.startswith("#") for link in links), links
    assert "http:" not in text and "https:" not in text and "url(" not in text and "@import" not in text


@pytest.fixture(autouse=True)
def training_needs_the_slow_marker(request, monkeypatch):
    """Fail a test that trains a model in this process without `@pytest.mark.slow`, so that
    `pytest -m "not slow"` stays the quick loop it promises to be."""
    if request.node.get_closest_marker("slow") is None:
        from biapy_cls import workflow

        def refuse(*args, **kwargs):
            pytest.fail(f"{request.node.nodeid} trains a model: mark it @pytest.mark.slow", pytrace=False)

        monkeypatch.setattr(workflow, "fit", refuse)
    yield


def interrupt_at_epoch(monkeypatch, epoch: int):
    """Make training raise KeyboardInterrupt (as Ctrl-C does) when epoch `epoch` (0-based) starts;
    returns a function that lets training run normally again."""
    from biapy_cls.engine import trainer

    real = trainer.train_one_epoch

    def interrupted(setup, current):
        if current == epoch:
            raise KeyboardInterrupt
        return real(setup, current)

    monkeypatch.setattr(trainer, "train_one_epoch", interrupted)
    return lambda: monkeypatch.setattr(trainer, "train_one_epoch", real)
