"""--gpu with several processes: local rank i uses the i-th listed GPU; too short a list is refused.

CUDA is mocked at the device-selection function only (torch.cuda.is_available / device_count).
"""

from __future__ import annotations

import pytest
import torch

from biapy_cls.engine import runtime
from biapy_cls.errors import UserError


@pytest.fixture
def four_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)


def test_local_rank_i_uses_the_ith_listed_gpu(four_gpus):
    ids = runtime.parse_gpu_ids("0,1,2")
    assert [runtime.select_device(ids, rank, "0,1,2") for rank in range(3)] == [
        torch.device("cuda", 0), torch.device("cuda", 1), torch.device("cuda", 2)]
    assert runtime.select_device(runtime.parse_gpu_ids("3, 1"), 1, "3, 1") == torch.device("cuda", 1)


@pytest.mark.parametrize("gpu", ["0,1", "0"])
def test_a_shorter_list_fails_with_the_documented_message(four_gpus, gpu):
    with pytest.raises(UserError, match=r"local rank 2 but --gpu lists only \d GPU\(s\)") as err:
        runtime.select_device(runtime.parse_gpu_ids(gpu), 2, gpu)
    documented = (runtime.__file__.rsplit("biapy_cls", 1)[0] + "docs/distributed.md")
    assert "This process has local rank 2 but --gpu lists only 2 GPU(s) (0,1)" in open(documented).read()
    assert "Give one GPU per process" in str(err.value)


def test_a_gpu_the_machine_does_not_have(four_gpus):
    with pytest.raises(UserError, match="asks for GPU 4, but this machine has 4 GPU"):
        runtime.select_device([0, 4], 1, "0,4")


def test_no_cuda_means_the_cpu(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.select_device([0, 1], 1, "0,1") == torch.device("cpu")
    assert "finds no CUDA GPU" in caplog.text
