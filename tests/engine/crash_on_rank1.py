"""`biapy` whose rank 1 crashes in its first training epoch: for the distributed failure test."""

import os
import sys

from biapy_cls.cli import main
from biapy_cls.engine import trainer

original = trainer.train_one_epoch


def train_one_epoch(setup, epoch):
    if os.environ.get("RANK") == "1":
        raise RuntimeError("simulated crash of rank 1")
    return original(setup, epoch)


trainer.train_one_epoch = train_one_epoch
sys.exit(main())
