"""Where the Python API's config comes from: `build_config` (BiaPy's helper), a YAML path, a dict (nested
sections and/or dotted keys), a yacs CfgNode, or a biapy-cls checkpoint (`.pth`), which embeds its config.

Kept free of torch imports, so that `build_config` is cheap to call.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biapy_cls.errors import CheckpointError, ConfigError, UserError

# BiaPy's workflows (PROBLEM.TYPE); biapy-cls runs CLASSIFICATION and names BiaPy for the others.
VALID_WORKFLOWS = ["SEMANTIC_SEG", "INSTANCE_SEG", "CLASSIFICATION", "DETECTION", "DENOISING", "SUPER_RESOLUTION",
                   "SELF_SUPERVISED", "IMAGE_TO_IMAGE"]

GpuArg = str | int | list | tuple | None


def normalize_gpu(gpu: GpuArg) -> str:
    """BiaPy's `gpu` argument (0, "0", "0,1", [0, 1]) as the CLI's --gpu string."""
    if gpu is None:
        return ""
    if isinstance(gpu, bool) or not isinstance(gpu, (str, int, list, tuple)):
        raise UserError(f"gpu must be a GPU number, a text such as '0,1' or a list of numbers, not {gpu!r}. "
                        "Examples: gpu=0, gpu='0', gpu='0,1', gpu=[0, 1].")
    if isinstance(gpu, (list, tuple)):
        return ",".join(str(g).strip() for g in gpu)
    return str(gpu).strip()


def deep_merge(base: dict, override: dict) -> dict:
    """`override` merged into `base` (in place, section by section); returns `base`."""
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def build_config(workflow: str, dims: str, phase: str = "both", patch_size: tuple | None = None,
                 model: dict | None = None, train_data: dict | None = None, val_data: dict | None = None,
                 test_data: dict | None = None, extra_config: dict | None = None) -> dict:
    """A config dict from high-level arguments, ready for `BiaPy(config)` (BiaPy's `build_config`).

    `workflow` is PROBLEM.TYPE (CLASSIFICATION here), `dims` PROBLEM.NDIM, `phase` 'train', 'test' or
    'both' (TRAIN.ENABLE / TEST.ENABLE), `patch_size` DATA.PATCH_SIZE. The keys of `model`, `train_data`,
    `val_data` and `test_data` are upper-cased into MODEL, DATA.TRAIN, DATA.VAL and DATA.TEST (e.g.
    `train_data={"path": "data/train"}`). `extra_config` (upper-case keys, nested or dotted) is merged last.
    Only these arguments are checked here; the whole config is checked when BiaPy(config) is built.
    """
    workflow = str(workflow).upper()
    if workflow not in VALID_WORKFLOWS:
        raise ConfigError(f"build_config: workflow must be one of {', '.join(VALID_WORKFLOWS)}; got {workflow!r}.")
    if workflow != "CLASSIFICATION":
        raise ConfigError(f"build_config: workflow {workflow} is one of BiaPy's workflows, but biapy-cls runs "
                          "CLASSIFICATION only. Use BiaPy for the others.")
    dims = str(dims).upper()
    if dims not in ("2D", "3D"):
        raise ConfigError(f"build_config: dims must be '2D' or '3D'; got {dims!r}.")
    phase = str(phase).lower()
    if phase not in ("train", "test", "both"):
        raise ConfigError(f"build_config: phase must be 'train', 'test' or 'both'; got {phase!r}.")

    def upper(values: dict) -> dict:
        return {str(k).upper(): v for k, v in values.items()}

    cfg: dict = {"PROBLEM": {"TYPE": workflow, "NDIM": dims}, "TRAIN": {"ENABLE": phase in ("train", "both")},
                 "TEST": {"ENABLE": phase in ("test", "both")}}
    if patch_size is not None:
        cfg.setdefault("DATA", {})["PATCH_SIZE"] = tuple(patch_size)
    if model:
        cfg["MODEL"] = upper(model)
    for section, values in (("TRAIN", train_data), ("VAL", val_data), ("TEST", test_data)):
        if values:
            cfg.setdefault("DATA", {})[section] = upper(values)
    if extra_config:
        deep_merge(cfg, _nest(copy.deepcopy(extra_config)))
    return cfg


def _nest(values: dict) -> dict:
    """{'TRAIN.EPOCHS': 5} -> {'TRAIN': {'EPOCHS': 5}}, so that dotted and nested keys merge together."""
    out: dict = {}
    for key, value in values.items():
        *parents, leaf = str(key).split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        if isinstance(value, dict) and isinstance(node.get(leaf), dict):
            deep_merge(node[leaf], _nest(value))
        else:
            node[leaf] = _nest(value) if isinstance(value, dict) else value
    return out


@dataclass
class ConfigSource:
    """A config as the API received it: its values, how errors name it, the stem of its backup file."""

    data: dict
    source: str  # "'x.yaml'", "the config given to BiaPy()" ...
    file_name: str  # JOB/config_files/<stem>_<run_id>.yaml takes its stem from this
    from_checkpoint: Path | None = None


def check_run_id(run_id: Any) -> int:
    """BiaPy(run_id=...): an integer, as the command line's --run_id (a text one made folders like job_abc)."""
    if isinstance(run_id, str) and run_id.strip().lstrip("-").isdigit():
        return int(run_id)
    if isinstance(run_id, bool) or not isinstance(run_id, int):
        raise ConfigError(f"BiaPy(run_id=...) must be an integer (the run's number, as --run_id), e.g. run_id=2; "
                          f"it is {run_id!r}.")
    return run_id


def check_config_path(config: Any, result_dir: Any) -> None:
    """BiaPy(config, ...) called from Python with a path that is no file: said in the API's words (read_yaml's
    message speaks of the --config flag), and a result_dir that is the config file named as swapped arguments."""
    if not isinstance(config, (str, Path)) or Path(config).expanduser().is_file():
        return
    path = Path(config).expanduser()
    swapped = (isinstance(result_dir, (str, Path)) and str(result_dir).lower().endswith((".yaml", ".yml", ".pth"))
               and Path(result_dir).expanduser().is_file())
    hint = (f" result_dir is the file '{result_dir}': the arguments look swapped. The config comes first: "
            "BiaPy('config.yaml', result_dir='results')." if swapped else "")
    what = "is a folder, not a YAML file or .pth checkpoint" if path.is_dir() else "does not exist"
    raise ConfigError(f"BiaPy(config): '{path}' {what}.{hint}")


def read_config_source(config: Any, name: str) -> ConfigSource:
    """The config of `BiaPy(config, ...)`: a YAML path, a .pth checkpoint, a dict or a yacs CfgNode."""
    from yacs.config import CfgNode

    if isinstance(config, (str, Path)):
        path = Path(config).expanduser()
        if path.name.lower().endswith((".pth", ".pt")):
            return ConfigSource(config_from_checkpoint(path), f"the checkpoint '{path.name}'", f"{name}.yaml", path)
        if path.name.lower().endswith(".safetensors"):
            raise CheckpointError(
                f"'{path}' is a .safetensors file, which holds weights only, not the config the model was trained "
                "with. Give the biapy-cls checkpoint (.pth) from the run's checkpoints/ folder instead."
            )
        from biapy_cls.config.load import read_yaml

        return ConfigSource(read_yaml(path), f"'{path.name}'", path.name)
    if isinstance(config, CfgNode):
        import yaml

        return ConfigSource(yaml.safe_load(config.dump()), "the CfgNode given to BiaPy()", f"{name}.yaml")
    if isinstance(config, dict):
        return ConfigSource(copy.deepcopy(config), "the config given to BiaPy()", f"{name}.yaml")
    raise ConfigError(f"BiaPy(config): config must be the path of a YAML file or of a .pth checkpoint, a dict (e.g. "
                      f"from build_config) or a yacs CfgNode, not {type(config).__name__}.")


# The embedded config's keys that describe where the original run read and wrote, not the model.
RUN_ONLY_KEYS = ("PATHS.CHECKPOINT_FILE", "MODEL.LOAD_CHECKPOINT", "DATA.TRAIN.PATH", "DATA.VAL.PATH")


def config_from_checkpoint(path: Path) -> dict:
    """The config a checkpoint was trained with, switched to inference with that checkpoint: no training,
    test data unlabelled (its folder kept when it still exists, else to be given before test())."""
    import yaml

    from biapy_cls.config.load import flatten
    from biapy_cls.engine.checkpoint import load_checkpoint

    state = load_checkpoint(path, "model to load")
    values = flatten(yaml.safe_load(state["config"]))
    for key in RUN_ONLY_KEYS:
        values.pop(key, None)
    test_path = str(values.get("DATA.TEST.PATH") or "")
    values.update({"TRAIN.ENABLE": False, "TEST.ENABLE": True, "DATA.TEST.LOAD_GT": False,
                   "DATA.TEST.USE_VAL_AS_TEST": False, "MODEL.LOAD_CHECKPOINT": True,
                   "PATHS.CHECKPOINT_FILE": str(path.absolute()),
                   "DATA.TEST.PATH": test_path if test_path and Path(test_path).is_dir() else ""})
    return values
