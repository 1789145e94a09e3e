"""What the Python API's calls return: the training history, the test results and in-memory predictions,
as objects with tables (pandas) and figures (matplotlib) for notebooks. The same numbers are in the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class PNG:
    """A picture that Jupyter shows inline (`_repr_png_`) and that can be saved."""

    def __init__(self, data: bytes):
        self.data = data

    def _repr_png_(self) -> bytes:
        return self.data

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.data)


@dataclass
class TrainResult:
    """`BiaPy.train()`: one row per epoch (the rows of RUN_training_log.json) and the checkpoints."""

    history: list[dict]  # epoch, train_loss, train_accuracy, ..., val_loss, val_accuracy, ..., lr, seconds
    monitor: str  # the quantity that picked the best checkpoint (TRAIN.CHECKPOINT_MONITOR or train_loss)
    best_epoch: int | None  # 1-based
    best_value: float | None
    best_checkpoint: Path | None
    last_checkpoint: Path | None

    @property
    def epochs(self) -> int:
        return len(self.history)

    def to_frame(self):
        """The history as a pandas DataFrame indexed by epoch."""
        import pandas as pd

        return pd.DataFrame(self.history).set_index("epoch")

    def plot(self) -> PNG:
        """Loss, metric and learning-rate curves, training and validation (the report's picture)."""
        from biapy_cls.evaluation.report_html import curves_png

        return PNG(curves_png(self.history) or b"")

    def __repr__(self) -> str:
        best = ""
        if self.best_value is not None:
            best = f", best {self.monitor} {self.best_value:.4f} at epoch {self.best_epoch}"
        return f"TrainResult({self.epochs} epochs{best}, best checkpoint '{self.best_checkpoint}')"


@dataclass
class TestResult:
    """`BiaPy.test()`: the predictions table (predictions.csv) and, with labels, the metrics (test_metrics.json)."""

    __test__ = False  # not a pytest test class, despite the name

    predictions: object  # pandas DataFrame: filename, class, class_name, [true_class, true_class_name,] prob_<class>
    metrics: dict | None  # None when the test images have no labels
    class_names: list[str]
    files: list[Path]  # the test images, in the rows' order
    results_dir: Path

    @property
    def accuracy(self) -> float | None:
        return None if self.metrics is None else self.metrics["accuracy"]

    @property
    def probabilities(self) -> np.ndarray:
        """(n_images, n_classes), column k for class_names[k]."""
        return self.predictions[[c for c in self.predictions.columns if c.startswith("prob_")]].to_numpy()

    @property
    def confusion_matrix(self):
        """DataFrame: rows the true class, columns the predicted class (None without labels)."""
        import pandas as pd

        if self.metrics is None:
            return None
        names = self.class_names
        return pd.DataFrame(self.metrics["confusion_matrix"]["matrix"], index=names, columns=names)

    @property
    def per_class(self):
        """DataFrame: precision, recall, f1, support, roc_auc of each class (None without labels)."""
        import pandas as pd

        return None if self.metrics is None else pd.DataFrame(self.metrics["per_class"]).T

    def misclassified(self):
        """The rows of the predictions table whose predicted class is not the true one."""
        table = self.predictions
        if "true_class" not in table.columns:
            return table.iloc[0:0]
        return table[table["class"] != table["true_class"]]

    def plot_confusion_matrix(self) -> PNG:
        """The confusion matrix picture of the run (charts/RUN_confusion_matrix.png)."""
        charts = sorted((self.results_dir / "charts").glob("*_confusion_matrix.png"))
        if self.metrics is None or not charts:
            raise ValueError("The test images have no labels (DATA.TEST.LOAD_GT False): there is no confusion matrix.")
        return PNG(charts[0].read_bytes())

    def plot_misclassified(self, max_images: int = 16):
        """Up to `max_images` misclassified test images with their true and predicted classes (a matplotlib
        Figure, shown inline by Jupyter), or None when every image is right."""
        import io

        from matplotlib.figure import Figure
        from PIL import Image

        from biapy_cls.data.io import read_file
        from biapy_cls.evaluation.report_html import thumbnail_png

        rows = self.misclassified().head(max_images)
        if rows.empty:
            return None
        columns = min(len(rows), 8)
        lines = -(-len(rows) // columns)
        fig = Figure(figsize=(1.6 * columns, 1.9 * lines), dpi=100, layout="constrained")
        axes = np.atleast_1d(fig.subplots(lines, columns)).ravel()
        for ax in axes:
            ax.axis("off")
        for ax, (index, row) in zip(axes, rows.iterrows()):
            png = thumbnail_png(self.files[index], read_file)
            if png:
                ax.imshow(np.asarray(Image.open(io.BytesIO(png))), cmap="gray")
            ax.set_title(f"true {row['true_class_name']}\npred. {row['class_name']}", fontsize=8)
        return fig

    def __repr__(self) -> str:
        accuracy = f", accuracy {self.accuracy:.4f}" if self.accuracy is not None else " (no labels)"
        return f"TestResult({len(self.predictions)} images{accuracy}, results in '{self.results_dir}')"


@dataclass
class Predictions:
    """`BiaPy.predict(images)`: one entry per image, in the order given."""

    class_index: np.ndarray  # (n,) predicted class index per image
    class_name: list[str]  # predicted class name per image
    probabilities: np.ndarray  # (n, n_classes) softmax probabilities, column k for classes[k]
    classes: list[str] = field(default_factory=list)  # the model's class names

    def __len__(self) -> int:
        return len(self.class_index)

    def to_frame(self):
        """A DataFrame with predictions.csv's columns (no filename: images in memory have none)."""
        from biapy_cls.evaluation.reports import predictions_table

        table = predictions_table([""] * len(self), self.probabilities, self.classes)
        return table.drop(columns="filename")

    def __repr__(self) -> str:
        shown = ", ".join(self.class_name[:8]) + (", ..." if len(self) > 8 else "")
        return f"Predictions({len(self)} image(s): {shown})"
