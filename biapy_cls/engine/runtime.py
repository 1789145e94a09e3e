"""Where the run executes: device, CPU threads, seeds and (under torch.distributed.run) the process group."""

from __future__ import annotations

import datetime
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist

from biapy_cls.engine.allocator import keep_freed_memory
from biapy_cls.errors import UserError

log = logging.getLogger("biapy_cls")
T = TypeVar("T")


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    memory: str = ""  # how CPU memory is managed between steps (engine/allocator.py), for the log

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def parse_gpu_ids(gpu: str | None) -> list[int]:
    if gpu is None or not str(gpu).strip():
        return []
    try:
        return [int(part) for part in str(gpu).replace(" ", "").split(",") if part != ""]
    except ValueError as err:
        raise UserError(f"--gpu '{gpu}' is not a list of GPU numbers; use e.g. --gpu 0 or --gpu 0,1.") from err


def select_device(gpu_ids: list[int], local_rank: int, gpu: str | None = None, warn: bool = True) -> torch.device:
    """The device of the process with this local rank: the local_rank-th GPU of --gpu, or the CPU.

    One GPU per process: under torchrun with --nproc_per_node=3 and --gpu 0,1,2, local rank i uses
    the i-th listed GPU; a shorter list is an error, not a silent sharing of one GPU.
    """
    if not gpu_ids or not torch.cuda.is_available():
        if gpu_ids and warn:
            log.warning(f"--gpu {gpu} was given, but PyTorch finds no CUDA GPU here: running on the CPU.")
        return torch.device("cpu")
    if local_rank >= len(gpu_ids):
        raise UserError(
            f"This process has local rank {local_rank} but --gpu lists only {len(gpu_ids)} GPU(s) ({gpu}). "
            "Give one GPU per process, e.g. --nproc_per_node=2 with --gpu 0,1."
        )
    count = torch.cuda.device_count()
    if gpu_ids[local_rank] >= count:
        raise UserError(
            f"--gpu {gpu} asks for GPU {gpu_ids[local_rank]}, but this machine has {count} GPU(s), numbered 0 to "
            f"{count - 1} (as CUDA_VISIBLE_DEVICES shows them). Run nvidia-smi to see them, and fix --gpu."
        )
    return torch.device("cuda", gpu_ids[local_rank])


def set_threads(num_cpus: int, world_size: int = 1) -> None:
    """`num_cpus` threads (SystemSettings.num_cpus) for the whole job, shared by its processes."""
    torch.set_num_threads(max(1, num_cpus // world_size))


def amp_dtype(choice: str, runtime: Runtime) -> torch.dtype | None:
    """TRAIN.AMP -> the autocast dtype, or None for full precision (always on the CPU, where autocast
    to bf16 is slower than float32 for these small networks)."""
    if not runtime.cuda or choice == "none":
        return None
    if choice == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[choice]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_runtime(gpu: str | None, num_cpus: int) -> Runtime:
    """Pick the device from --gpu and join the process group when launched by torch.distributed.run;
    `num_cpus` is SystemSettings.num_cpus (SYSTEM.NUM_CPUS with -1 resolved)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = select_device(parse_gpu_ids(gpu), local_rank, gpu, warn=rank == 0)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    set_threads(num_cpus, world_size if device.type == "cpu" else 1)
    # on a GPU the steps' memory is the GPU's (PyTorch's caching allocator): nothing to keep on the host
    memory = keep_freed_memory() if device.type == "cpu" else ""
    runtime = Runtime(device, rank, world_size, local_rank, memory)
    if runtime.distributed and not dist.is_initialized():
        backend = "nccl" if runtime.cuda else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return runtime


def shutdown_runtime(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


def reduce_sum(tensor: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """Sum a tensor over all processes (identity in a single process), so every rank sees the same."""
    if runtime.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(runtime: Runtime) -> None:
    """Wait for every process (e.g. until rank 0 has written a checkpoint the others read)."""
    if runtime.distributed:
        dist.barrier()


def run_on_main(runtime: Runtime, fn: Callable[[], T]) -> T:
    """Run `fn` on rank 0 alone and give its result to every rank.

    A UserError raised by `fn` is raised on every rank, so that the whole job stops with rank 0's
    message (printed once, by rank 0) instead of the other ranks waiting for it forever.
    """
    result, error = None, None
    if runtime.is_main:
        try:
            result = fn()
        except UserError as err:
            error = err
    if runtime.distributed:
        box = [(result, None if error is None else str(error))]
        dist.broadcast_object_list(box, src=0)
        result, message = box[0]
        if message is not None and error is None:
            error = UserError(message)
            error.reported_by_main = True
    if error is not None:
        raise error
    return result


def gather_rows(indices: torch.Tensor, rows: torch.Tensor, runtime: Runtime) -> tuple[torch.Tensor, torch.Tensor]:
    """Every process's (dataset index, row) pairs, on every process, each index once, sorted by index.

    A DistributedSampler pads the last shard with repeated images; those duplicates are dropped here.
    """
    if runtime.distributed:
        parts: list = [None] * runtime.world_size
        dist.all_gather_object(parts, (indices.cpu(), rows.cpu()))
        indices = torch.cat([p[0] for p in parts])
        rows = torch.cat([p[1] for p in parts])
    order = indices.argsort(stable=True)
    indices, rows = indices[order], rows[order]
    first = torch.ones_like(indices, dtype=torch.bool)
    first[1:] = indices[1:] != indices[:-1]
    return indices[first], rows[first]


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside a DistributedDataParallel wrapper."""
    return model.module if hasattr(model, "module") else model
