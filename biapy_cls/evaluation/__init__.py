"""Evaluation: metrics (metrics.py) and the files and charts written for people (reports.py)."""
