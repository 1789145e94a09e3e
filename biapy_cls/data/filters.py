"""DATA.{TRAIN,VAL,TEST}.FILTER_SAMPLES: remove images by their intensity properties, before anything is trained.

BiaPy's semantics: PROPS, VALUES and SIGNS are lists of condition groups, e.g. PROPS [['mean'], ['min', 'max']],
VALUES [[10], [0, 255]], SIGNS [['lt'], ['ge', 'le']]. An image is removed when it meets every condition of
at least one group. The properties are measured on the whole image as read (all channels, stored values),
or with NORM_BEFORE on the image normalised by DATA.NORMALIZATION (with statistics of the image itself).
BiaPy's mask-based properties (foreground, target_*, diff*) need segmentation masks and are refused.
"""

from __future__ import annotations

import collections
import csv
import io
import logging
import operator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import torch
from yacs.config import CfgNode as CN

from biapy_cls.data.discover import SampleList
from biapy_cls.errors import DataError

log = logging.getLogger("biapy_cls")

PROPS = ("mean", "min", "max")
MASK_PROPS = ("foreground", "target_mean", "target_min", "target_max", "diff", "diff_by_min_max_ratio",
              "diff_by_target_min_max_ratio")
SIGNS = {"gt": (operator.gt, ">"), "ge": (operator.ge, ">="), "lt": (operator.lt, "<"), "le": (operator.le, "<=")}
SPLIT_NAMES = {"TRAIN": "training", "VAL": "validation", "TEST": "test"}
CSV_HEADER = ["split", "filename", "class", "condition", "values"]


def check_filter_cfg(cfg: CN, errors: list[str]) -> None:
    """The shape and words of every enabled FILTER_SAMPLES (BiaPy's checks, with the key named)."""
    for split in SPLIT_NAMES:
        f = cfg.DATA[split].FILTER_SAMPLES
        if not f.ENABLE:
            continue
        key = f"DATA.{split}.FILTER_SAMPLES"
        props, values, signs = list(f.PROPS), list(f.VALUES), list(f.SIGNS)
        example = "e.g. PROPS: [['mean']], VALUES: [[10]], SIGNS: [['lt']] removes images whose mean is below 10"
        if not props:
            errors.append(f"{key}.ENABLE is True but {key}.PROPS is empty: give groups of conditions, {example}.")
            continue
        if not all(isinstance(x, (list, tuple)) for x in props + values + signs):
            errors.append(f"{key}.PROPS, VALUES and SIGNS must be lists of lists (one list per condition group), "
                          f"{example}.")
            continue
        if not len(props) == len(values) == len(signs) or any(
                not len(p) == len(v) == len(s) for p, v, s in zip(props, values, signs)):
            errors.append(f"{key}.PROPS ({props}), VALUES ({values}) and SIGNS ({signs}) must have the same nesting: "
                          "one value and one sign for each property.")
            continue
        for group_props, group_values, group_signs in zip(props, values, signs):
            if len(set(group_props)) != len(group_props):
                errors.append(f"{key}.PROPS group {list(group_props)} names a property twice.")
            for prop in group_props:
                if prop in MASK_PROPS:
                    errors.append(f"{key}.PROPS: '{prop}' compares an image with its segmentation mask or target "
                                  f"image, which classification does not have. Use {', '.join(PROPS)}.")
                elif prop not in PROPS:
                    errors.append(f"{key}.PROPS: '{prop}' is not a property; accepted: {', '.join(PROPS)}.")
            for value in group_values:
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    errors.append(f"{key}.VALUES: {value!r} is not a number.")
            for sign in group_signs:
                if sign not in SIGNS:
                    errors.append(f"{key}.SIGNS: '{sign}' is not a comparison; accepted: {', '.join(SIGNS)}.")


@dataclass(frozen=True)
class SampleFilter:
    """One split's conditions: groups of (property, sign, value)."""

    split: str
    groups: tuple[tuple[tuple[str, str, float], ...], ...]
    norm_before: bool = False

    @classmethod
    def from_cfg(cls, cfg: CN, split: str) -> SampleFilter | None:
        f = cfg.DATA[split].FILTER_SAMPLES
        if not f.ENABLE:
            return None
        groups = tuple(tuple((p, s, float(v)) for p, v, s in zip(ps, vs, ss))
                       for ps, vs, ss in zip(f.PROPS, f.VALUES, f.SIGNS))
        return cls(split, groups, bool(f.NORM_BEFORE))

    @property
    def key(self) -> str:
        return f"DATA.{self.split}.FILTER_SAMPLES"

    def describe_group(self, group) -> str:
        return " and ".join(f"{p} {SIGNS[s][1]} {v:g}" for p, s, v in group)

    def matched_group(self, props: dict[str, float]) -> int | None:
        """Index of the first group whose conditions all hold, or None (the image is kept)."""
        for i, group in enumerate(self.groups):
            if all(SIGNS[s][0](props[p], v) for p, s, v in group):
                return i
        return None


def measure(image: np.ndarray, normalizer=None) -> dict[str, float]:
    """mean, min, max of a channels-last image, raw or normalised (the normaliser works on (1, c, ...) batches)."""
    if normalizer is not None:
        from biapy_cls.data.io import dtype_range
        from biapy_cls.data.transforms import to_unit

        value_range = dtype_range(image.dtype)
        x = torch.from_numpy(np.moveaxis(image, -1, 0)[None].astype(np.float32))
        image = normalizer(to_unit(x, value_range), value_range).numpy()
    return {"mean": float(image.mean()), "min": float(image.min()), "max": float(image.max())}


@dataclass
class FilterOutcome:
    """What one filter removed: one row per image, for the log, the report and filtered_samples.csv."""

    split: str
    total: int
    rows: list[dict]


def apply_filter(samples: SampleList, sample_filter: SampleFilter, spec, class_names: list[str], normalizer=None,
                 threads: int = 4) -> tuple[SampleList, FilterOutcome]:
    """The samples that meet no condition group, and what was removed; DataError when too much is removed."""
    from biapy_cls.data.io import read_image

    if sample_filter.norm_before and normalizer is not None and normalizer.measure_by == "dataset":
        normalizer = replace(normalizer, measure_by="image")  # dataset statistics do not exist before filtering

    def props_of(path) -> dict[str, float]:
        return measure(read_image(path, spec.ndim, spec.channels, spec.force_rgb),
                       normalizer if sample_filter.norm_before else None)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        measured = list(pool.map(props_of, samples.paths))
    keep, rows = [], []
    names = samples.relative_names()
    for i, props in enumerate(measured):
        group = sample_filter.matched_group(props)
        if group is None:
            keep.append(i)
            continue
        label = int(samples.labels[i])
        used = sorted({p for p, _, _ in sample_filter.groups[group]})
        rows.append({"split": SPLIT_NAMES[sample_filter.split], "filename": names[i],
                     "class": class_names[label] if label >= 0 else "",
                     "condition": sample_filter.describe_group(sample_filter.groups[group]),
                     "values": "; ".join(f"{p}={props[p]:.6g}" for p in used)})
    outcome = FilterOutcome(sample_filter.split, len(samples), rows)
    kept = samples.subset(np.asarray(keep, dtype=np.int64))
    _check_left(samples, kept, sample_filter, class_names)
    return kept, outcome


def _check_left(before: SampleList, after: SampleList, sample_filter: SampleFilter, class_names: list[str]) -> None:
    what = SPLIT_NAMES[sample_filter.split]
    conditions = "; ".join(sample_filter.describe_group(g) for g in sample_filter.groups)
    fix = f"Loosen {sample_filter.key} (conditions: {conditions}) or switch it off."
    if len(after) == 0:
        raise DataError(f"{sample_filter.key} removes every one of the {len(before)} {what} images. {fix}")
    if sample_filter.split == "TEST" or (before.labels < 0).any():
        return  # a test set may lack classes
    lost = sorted(set(before.labels.tolist()) - set(after.labels.tolist()))
    if lost:
        names = ", ".join(class_names[c] for c in lost)
        raise DataError(f"{sample_filter.key} removes every {what} image of class {names}, which the classifier then "
                        f"could not {'learn' if sample_filter.split == 'TRAIN' else 'be validated on'}. {fix}")


def summary(outcome: FilterOutcome, sample_filter: SampleFilter) -> str:
    """'DATA.TRAIN.FILTER_SAMPLES removed 3 of 240 training images: mean < 10: 3 (a: 2, b: 1)'."""
    what = SPLIT_NAMES[sample_filter.split]
    text = f"{sample_filter.key} removed {len(outcome.rows)} of {outcome.total} {what} images"
    by_condition: dict[str, collections.Counter] = {}
    for row in outcome.rows:
        by_condition.setdefault(row["condition"], collections.Counter())[row["class"] or "(no class)"] += 1
    parts = [f"{cond}: {sum(c.values())} (" + ", ".join(f"{k}: {n}" for k, n in sorted(c.items())) + ")"
             for cond, c in by_condition.items()]
    return text + (": " + "; ".join(parts) if parts else "") + "."


def filtered_csv(outcomes: list[FilterOutcome]) -> str:
    """filtered_samples.csv: split, filename, class, the condition that removed it and the measured values."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_HEADER, lineterminator="\n")
    writer.writeheader()
    for outcome in outcomes:
        writer.writerows(outcome.rows)
    return out.getvalue()
