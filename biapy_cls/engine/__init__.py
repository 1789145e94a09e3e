"""Engine: the training loop (trainer.py), optimizers (optim.py), checkpoints (checkpoint.py),
inference (inference.py) and devices / processes (runtime.py)."""
