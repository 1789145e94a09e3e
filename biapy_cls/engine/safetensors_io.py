"""MODEL.OUT_CHECKPOINT_FORMAT safetensors: a whole checkpoint (nested dicts, lists, tuples, numbers, strings
and tensors) in one .safetensors file. The tensors are stored as tensors; everything else goes, as JSON with
each tensor replaced by its name, into the file's metadata. Dict keys keep their type (an optimizer state
has integer keys) and tuples stay tuples, so a checkpoint reads back exactly as torch.load would give it.
Like `torch.load(weights_only=True)`, reading runs no code."""

from __future__ import annotations

import json
from pathlib import Path

import torch

SUFFIX = ".safetensors"
META_KEY = "biapy_cls_checkpoint"


def _encode(value, tensors: dict[str, torch.Tensor]):
    if isinstance(value, torch.Tensor):
        name = f"t{len(tensors)}"
        # A copy of its own: safetensors refuses tensors sharing memory (tied weights) or non-contiguous views.
        tensors[name] = value.detach().cpu().contiguous().clone()
        return {"__tensor__": name}
    if isinstance(value, dict):
        return {"__dict__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in value]}
    if isinstance(value, list):
        return [_encode(v, tensors) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"a checkpoint cannot hold a {type(value).__name__} in safetensors format")


def _decode(value, tensors: dict[str, torch.Tensor]):
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__tuple__" in value:
            return tuple(_decode(v, tensors) for v in value["__tuple__"])
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value["__dict__"]}
    return value


def save(state: dict, path: str | Path) -> None:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    structure = json.dumps(_encode(state, tensors))
    save_file(tensors, str(path), metadata={META_KEY: structure})


def load(path: str | Path) -> dict:
    """The checkpoint; ValueError when the file is a safetensors file without a biapy-cls checkpoint in it."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as f:
        metadata = f.metadata() or {}
        if META_KEY not in metadata:
            raise ValueError("no biapy-cls checkpoint metadata")
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    return _decode(json.loads(metadata[META_KEY]), tensors)


def is_safetensors(path: str | Path) -> bool:
    """By name, or by content: an 8-byte little-endian header length followed by a JSON object."""
    path = Path(path)
    if path.suffix == SUFFIX:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000
