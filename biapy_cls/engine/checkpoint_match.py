"""Whether a checkpoint belongs to this run's task: same classes in the same order, same model.

A checkpoint's output k means its k-th class name. Renamed or re-ordered class folders would silently
swap class meanings (test accuracy 0.00 after --resume), so resuming refuses any difference, and
fine-tuning refuses the same names in another order or other names under the same head size. A model
that differs is named by the setting that differs, not by torch's dump of state-dict keys.
"""

from __future__ import annotations

from typing import Any

import yaml

from biapy_cls.errors import CheckpointError


def _names(names: list[str]) -> str:
    return "[" + ", ".join(names) + "]"


def check_class_names(checkpoint: dict, class_names: list[str], source: str, fine_tune: bool = False,
                      skip_unmatched: bool = False) -> None:
    """Refuse a checkpoint whose class names (or their order) differ from the data's (see the module docstring)."""
    theirs = list(checkpoint.get("class_names", []))
    if theirs == list(class_names):
        return
    same_set = sorted(theirs) == sorted(class_names)
    if fine_tune and not same_set and (len(theirs) != len(class_names) or skip_unmatched):
        return  # new classes: a new head (other size), or the user asked for loading what fits
    what = ("the same class names in another order" if same_set
            else "other class names")
    way_out = ("Rename the class folders back to the checkpoint's names" if not same_set
               else "Class order is the natural order of the folder names; rename the folders so it matches")
    extra = (" If these really are new classes, set MODEL.SKIP_UNMATCHED_LAYERS True to fine-tune on them "
             "anyway (the old head's outputs are reused for the new classes)." if fine_tune and not same_set else "")
    raise CheckpointError(
        f"The checkpoint '{source}' was trained on {what}: checkpoint {_names(theirs)}, data "
        f"{_names(list(class_names))}. Output k of the model means the checkpoint's k-th class, so this would "
        f"silently swap class meanings. {way_out}, or start a new run.{extra}"
    )


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix.rstrip("."): node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(_flat(value, f"{prefix}{key}."))
    return out


# MODEL keys that say where weights come from, not what shape the model has.
NOT_SHAPE = ("LOAD_CHECKPOINT", "LOAD_CHECKPOINT_EPOCH", "SAVE_CKPT_FREQ", "PRETRAINED_WEIGHTS",
             "SKIP_UNMATCHED_LAYERS", "FREEZE_LAYERS_MATCHING", "SOURCE")


def model_differences(checkpoint: dict, spec: dict, model_cfg_yaml: str) -> list[str]:
    """'setting: checkpoint X, now Y' for every model-shaping difference between a checkpoint and this run."""
    theirs = checkpoint.get("model_spec", {})
    labels = {"architecture": "MODEL.ARCHITECTURE", "ndim": "PROBLEM.NDIM",
              "in_channels": "channels (last value of DATA.PATCH_SIZE)", "n_classes": "number of classes",
              "spatial": "image size (DATA.PATCH_SIZE)"}
    diffs = []
    for key, label in labels.items():
        a, b = theirs.get(key), spec.get(key)
        if key == "architecture":
            from biapy_cls.models import normalize_architecture

            if normalize_architecture(str(a)) == normalize_architecture(str(b)):
                continue
        if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
            a, b = tuple(a or ()), tuple(b or ())
        if a != b:
            diffs.append(f"{label}: checkpoint {a}, now {b}")
    old = _flat(yaml.safe_load(checkpoint.get("model_cfg") or "{}") or {})
    new = _flat(yaml.safe_load(model_cfg_yaml or "{}") or {})
    for key in sorted(set(old) | set(new)):
        if key.split(".")[0] in NOT_SHAPE or key in ("ARCHITECTURE",):
            continue
        if old.get(key) != new.get(key):
            diffs.append(f"MODEL.{key}: checkpoint {old.get(key)!r}, now {new.get(key)!r}")
    return diffs


def check_resumable_model(checkpoint: dict, spec: dict, model_cfg_yaml: str, source: str) -> None:
    """Refuse --resume when this run would build another model than the checkpoint's."""
    diffs = model_differences(checkpoint, spec, model_cfg_yaml)
    if diffs:
        raise CheckpointError(
            f"--resume needs the same model as the checkpoint '{source}', but " + "; ".join(diffs[:6])
            + (f" (and {len(diffs) - 6} more)" if len(diffs) > 6 else "")
            + ". Resume with the checkpoint's settings, or start a new run (another --run_id, or --overwrite)."
        )
