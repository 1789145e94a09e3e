"""The Dockerfile cannot be built here (no Docker engine), so check what it says instead."""

from __future__ import annotations

import json
import re
import shlex

from conftest import ROOT

KNOWN = {"FROM", "LABEL", "ENV", "WORKDIR", "COPY", "RUN", "ENTRYPOINT", "CMD", "ARG", "USER", "EXPOSE"}


def instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n\s*", " ", text)  # join continuation lines
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_every_instruction_is_a_known_dockerfile_instruction():
    assert instructions(), "empty Dockerfile"
    assert {word for word, _ in instructions()} <= KNOWN


def test_base_image_is_a_pinned_cuda_pytorch_image():
    word, image = instructions()[0]
    assert word == "FROM"
    assert re.fullmatch(r"pytorch/pytorch:\d+\.\d+\.\d+-cuda\d+\.\d+-cudnn\d+-(runtime|devel)", image), image
    version = re.match(r"pytorch/pytorch:(\d+)\.(\d+)", image).groups()
    assert tuple(map(int, version)) >= (2, 4)  # pyproject asks for torch>=2.4


def test_copied_paths_exist_and_are_not_ignored():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for word, rest in instructions():
        if word == "COPY":
            *sources, _ = shlex.split(rest)
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert source not in ignored, f"COPY {source}: excluded by .dockerignore"


def test_package_installed_and_entrypoint_is_biapy():
    runs = " ".join(rest for word, rest in instructions() if word == "RUN")
    assert re.search(r"pip install \"?\.(\[[a-z,]+\])?\"?", runs)
    entry = [rest for word, rest in instructions() if word == "ENTRYPOINT"]
    assert len(entry) == 1 and json.loads(entry[0]) == ["biapy"]  # exec form: flags pass straight to biapy


def test_dockerignore_keeps_data_and_results_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"data", "results", ".git"} <= set(ignored)


def _extras(install_line: str) -> set[str]:
    match = re.search(r"install (?:-e )?\"?\.(?:\[([a-z0-9_,]+)\])?\"?", install_line)
    assert match, install_line
    return set(filter(None, (match.group(1) or "").split(",")))


def test_image_installs_the_extras_of_the_readme_install_line():
    readme = (ROOT / "README.md").read_text()
    readme_line = next(line for line in readme.splitlines()
                       if line.startswith("python -m pip install -e") and "test" not in line)
    makefile_line = next(line for line in (ROOT / "Makefile").read_text().splitlines()
                         if "install -e" in line and "test" not in line)
    docker_line = " ".join(rest for word, rest in instructions() if word == "RUN" and "pip install" in rest)
    assert _extras(docker_line) == _extras(readme_line) == _extras(makefile_line)


def test_usage_example_passes_gpu_as_the_spec_does():
    usage = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("# Run:"))
    assert "--gpus" in usage and re.search(r"--gpu \d", usage) and "--run_id" in usage
