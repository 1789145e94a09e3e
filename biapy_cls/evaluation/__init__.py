"""Evaluation: metrics (metrics.py) and the files and charts written for people (reports.py)."""

import warnings

# A class name in a script the chart font lacks (Chinese, Japanese ...) is drawn as boxes in the PNG charts (the
# report's tables and predictions.csv show it right); matplotlib's two-line warning per chart looked like a failure.
warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)
