"""Data: class folders (discover.py), file readers (io.py), datasets and loaders (dataset.py),
normalisation (transforms.py) and augmentation (augment.py, samples: aug_samples.py) on batches."""
