"""Starting a model from earlier weights: a biapy-cls checkpoint (fine-tuning), a local weights file
(MODEL.PRETRAINED_WEIGHTS), and freezing parameters by name (MODEL.FREEZE_LAYERS_MATCHING).

Nothing here downloads (library weights are fetched by models/weights.py). What could not be loaded is
always logged by name, so that a fine-tuning run says plainly which layers start from scratch.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from torch import nn

from biapy_cls.errors import CheckpointError, ConfigError

log = logging.getLogger("biapy_cls")


def _names(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def split_state(model: nn.Module, state: dict) -> tuple[dict, list[str], list[str], list[str]]:
    """(tensors that fit, names of shape-mismatched, missing from `state`, unknown to `model`)."""
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    mismatched = [k for k in state if k in own and k not in fits]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    return fits, mismatched, missing, unexpected


def load_fine_tune(model: nn.Module, checkpoint: dict, spec, source: str, skip_unmatched: bool) -> None:
    """Load a biapy-cls checkpoint's weights into `model` (built for `spec`, the run's ModelSpec)."""
    from biapy_cls.models import normalize_architecture

    theirs = checkpoint["model_spec"]
    if not skip_unmatched:
        their_source = theirs.get("source", "biapy")
        if (their_source, normalize_architecture(theirs["architecture"])) != (
                spec.source, normalize_architecture(spec.architecture)):
            their = theirs["architecture"] if their_source == "biapy" else f"{their_source} {theirs['architecture']}"
            raise CheckpointError(
                f"The checkpoint '{source}' holds a {their} model, but this run builds a {spec.label} model. Set "
                "MODEL.SOURCE and MODEL.ARCHITECTURE (or the source's model name key) as for the checkpoint, or set "
                "MODEL.SKIP_UNMATCHED_LAYERS True to load only the tensors whose names and shapes fit."
            )
        layout = int(theirs.get("layout", 1))
        if layout != spec.layout:
            raise CheckpointError(
                f"The checkpoint '{source}' holds a {theirs['architecture']} of model layout {layout} (older "
                f"biapy-cls), whose layers differ from today's {spec.architecture} (layout {spec.layout}, see "
                "docs/models.md). Testing with it (TRAIN.ENABLE False) rebuilds it as it was trained. To fine-tune "
                "today's model from it, set MODEL.SKIP_UNMATCHED_LAYERS True: the tensors that fit are loaded, "
                "the others start from scratch and are listed in the log."
            )
        if int(theirs["n_classes"]) != spec.n_classes:
            raise CheckpointError(
                f"The checkpoint '{source}' was trained on {theirs['n_classes']} classes "
                f"({', '.join(checkpoint.get('class_names', []))}), but the training data has {spec.n_classes}. "
                "To fine-tune it on these classes with a new classification head, set MODEL.SKIP_UNMATCHED_LAYERS True."
            )
    fits, mismatched, missing, unexpected = split_state(model, checkpoint["model_state"])
    if not skip_unmatched and (mismatched or missing or unexpected):
        raise CheckpointError(
            f"The checkpoint '{source}' does not fit this model ({spec.ndim}, {spec.in_channels} channel(s)): "
            f"{len(mismatched)} tensor(s) differ in shape ({_names(mismatched)}), {len(missing)} are missing. "
            "Use the same DATA.PATCH_SIZE channels, PROBLEM.NDIM and MODEL settings as the checkpoint, or set "
            "MODEL.SKIP_UNMATCHED_LAYERS True to start those layers from scratch."
        )
    if not fits:
        raise CheckpointError(f"No tensor of the checkpoint '{source}' fits this {spec.architecture} model: "
                              "it is of another architecture. Use a checkpoint of the same MODEL.ARCHITECTURE.")
    model.load_state_dict(fits, strict=False)
    log.info(f"Fine-tuning from '{source}': {len(fits)} of {len(model.state_dict())} tensors loaded.")
    if mismatched or missing:
        log.info(f"Starting from scratch (MODEL.SKIP_UNMATCHED_LAYERS): {_names(mismatched + missing, 12)}")


def read_weights(path: Path) -> dict:
    """A state dict from a .safetensors, .pth/.pt/.bin file (timm's, or a dict holding one)."""
    try:
        if path.name.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - many formats, many errors
        raise ConfigError(
            f"MODEL.PRETRAINED_WEIGHTS '{path}' cannot be read ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}). Give a timm weights file (.pth, .bin, .safetensors)."
        ) from err
    for key in ("model_state", "state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"MODEL.PRETRAINED_WEIGHTS '{path}' holds no state dict of tensors.")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _adapt(target: nn.Module, state: dict) -> dict:
    """Fit a timm file to `target`: first-conv channels, ViT position embedding and final norm."""
    from timm.models import adapt_input_conv

    own = target.state_dict()
    state = dict(state)
    for key, value in list(state.items()):
        mine = own.get(key)
        if (mine is not None and value.ndim == 4 and mine.ndim == 4 and value.shape[1] != mine.shape[1]
                and value.shape[0] == mine.shape[0] and value.shape[2:] == mine.shape[2:]):
            state[key] = adapt_input_conv(mine.shape[1], value)
            log.info(f"Pretrained weights: '{key}' adapted from {value.shape[1]} to {mine.shape[1]} input channel(s).")
    if "pos_embed" in state and "pos_embed" in own and state["pos_embed"].shape != own["pos_embed"].shape:
        from timm.layers import resample_abs_pos_embed

        grid = target.patch_embed.grid_size
        state["pos_embed"] = resample_abs_pos_embed(state["pos_embed"], new_size=list(grid), num_prefix_tokens=1)
    if (
        "fc_norm.weight" in own
        and "fc_norm.weight" not in state
        and "norm.weight" in state
        and "norm.weight" not in own
    ):
        state["fc_norm.weight"], state["fc_norm.bias"] = state.pop("norm.weight"), state.pop("norm.bias")
    return state


def load_pretrained(model: nn.Module, path: str) -> None:
    """MODEL.PRETRAINED_WEIGHTS into a 2D timm model; tensors that do not fit (the head) are skipped."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"MODEL.PRETRAINED_WEIGHTS '{file}' does not exist. Give a local timm weights file "
                          "(nothing is downloaded), or leave the key empty.")
    # timm models, or wrappers that expose theirs (the 2D ViT pads its input first).
    # timm and torchvision models (head_names marks MODEL.SOURCE models), or wrappers that expose theirs (the 2D
    # ViT pads its input first).
    library = type(model).__module__.startswith("timm.") or hasattr(model, "head_names")
    target = getattr(model, "timm_module", model if library else None)
    if target is None:
        raise ConfigError("MODEL.PRETRAINED_WEIGHTS loads weights into MODEL.SOURCE torchvision and timm models and "
                          "into 2D vit and efficientnet_b* models only. For other models start from a biapy-cls "
                          "checkpoint with MODEL.LOAD_CHECKPOINT.")
    fits, mismatched, missing, _ = split_state(target, _adapt(target, read_weights(file)))
    if not fits:
        raise ConfigError(f"No tensor of MODEL.PRETRAINED_WEIGHTS '{file}' fits this model: its names or shapes "
                          "belong to another architecture. Use weights of the same timm model.")
    target.load_state_dict(fits, strict=False)
    log.info(f"Pretrained weights '{file}': {len(fits)} of {len(target.state_dict())} tensors loaded"
             + (f"; from scratch: {_names(mismatched + missing)}" if mismatched or missing else "") + ".")


def freeze_matching(model: nn.Module, patterns: list[str]) -> int:
    """Turn off gradients of parameters whose name matches a pattern; returns how many were frozen."""
    if not patterns:
        return 0
    regexes = [re.compile(str(p)) for p in patterns]
    names = [name for name, _ in model.named_parameters()]
    frozen = 0
    for name, param in model.named_parameters():
        if any(r.search(name) for r in regexes):
            param.requires_grad_(False)
            frozen += 1
    if frozen == 0:
        raise ConfigError(f"MODEL.FREEZE_LAYERS_MATCHING {list(patterns)} matches no parameter. Parameter names look "
                          f"like: {_names(names, 5)}.")
    n_frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())
    log.info(f"Frozen (MODEL.FREEZE_LAYERS_MATCHING): {frozen} of {len(names)} parameter tensors, "
             f"{n_frozen / 1e6:.2f} M of {n_all / 1e6:.2f} M parameters.")
    if frozen == len(names):
        raise ConfigError("MODEL.FREEZE_LAYERS_MATCHING matches every parameter: nothing would be trained.")
    return frozen
