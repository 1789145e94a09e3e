"""Per-step overhead of biapy-cls's training loop against a bare PyTorch loop, on the same data.

    PYTHONPATH=. python bench/train_overhead.py [--images 1280] [--threads 1] [--rounds 4]

Both loops read the same uint8 images through the same DataLoader and sampler and train simple_cnn
with AdamW; ours adds its bookkeeping (loss sums, confusion matrix, schedule, scaler, progress bar).
The rounds alternate, so a busy machine slows both alike. Prints images per second for each.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from biapy_cls.config.defaults import get_cfg_defaults
from biapy_cls.engine.losses import ClassificationLoss
from biapy_cls.engine.optim import LRSchedule, build_optimizer
from biapy_cls.engine.runtime import Runtime
from biapy_cls.engine.trainer import EarlyStopping, FitSetup, train_one_epoch
from biapy_cls.models import ModelSpec, build_model
from biapy_cls.outputs import RunPaths


class Images(Dataset):
    value_range = 255.0

    def __init__(self, n: int):
        self.images = torch.randint(0, 256, (n, 32, 32, 1), dtype=torch.uint8)
        self.labels = torch.randint(0, 10, (n,))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, indices):
        idx = torch.as_tensor(indices)
        return self.images[idx], self.labels[idx], idx


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1280)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = PyTorch's default")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = Images(args.images)
    loader = DataLoader(data, batch_size=32, sampler=DistributedSampler(data, 1, 0, shuffle=True, seed=0),
                        collate_fn=lambda batch: batch)
    cfg = get_cfg_defaults()
    model = build_model(ModelSpec("simple_cnn", "2D", 1, 10, (32, 32)), cfg.MODEL)
    optimizer = build_optimizer(cfg, model)

    def prepare(x, value_range, train):
        return x.permute(0, 3, 1, 2).float() / value_range

    def bare() -> None:
        model.train()
        for images, labels, _ in loader:
            loss = torch.nn.functional.cross_entropy(model(prepare(images, 255.0, True)), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    setup = FitSetup(model=model, criterion=ClassificationLoss(), optimizer=optimizer,
                     schedule=LRSchedule(cfg, optimizer, len(loader)), train_loader=loader, val_loader=None,
                     prepare=prepare, runtime=Runtime(torch.device("cpu")),
                     paths=RunPaths.create("/tmp", "bench", 1, "bench.yaml"), epochs=1, n_classes=10,
                     early_stopping=EarlyStopping(), chart_every=1, checkpoint_payload=dict)
    loops = {"bare PyTorch": bare, "biapy-cls": lambda: train_one_epoch(setup, 0)}
    for loop in loops.values():  # warm-up
        loop()
    speed = {name: [] for name in loops}
    for _ in range(args.rounds):
        for name, loop in loops.items():
            start = time.perf_counter()
            loop()
            speed[name].append(len(data) / (time.perf_counter() - start))
    for name, values in speed.items():
        print(f"{name:>13}: {max(values):7.0f} img/s best, {sorted(values)[len(values) // 2]:7.0f} median")


if __name__ == "__main__":
    main()
