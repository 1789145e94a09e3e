"""Data: class folders (discover.py), file readers (io.py), datasets and loaders (dataset.py),
normalisation and augmentation on batches (transforms.py)."""
