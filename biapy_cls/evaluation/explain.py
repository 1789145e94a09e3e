"""Saliency maps: which part of an image the classifier's answer depended on.

Two methods (TEST.EXPLAIN.METHOD), both with plain torch hooks, for any model:
- gradcam (Selvaraju et al. 2017): the last spatial feature map, weighted by the mean gradient of the
  class score over each channel. CNNs: the last module in call order whose output is a (N, C, *spatial)
  map larger than 1x1 (the last convolutional stage). Vision transformers (a `blocks` container of
  token blocks): Grad-CAM on the token map reshaped to the patch grid (not attention rollout, which is
  blind to the class), read at the last block's output when the head reads the mean of the tokens (our
  ViT), or entering its attention (`norm1`, as pytorch-grad-cam does) behind a class token, prefix
  tokens dropped.
- gradients (Simonyan et al. 2014): |d class score / d input|, the largest over channels.

Maps are scaled to [0, 1] per image, resized to the input, and drawn over the image; volumes show the
maximum projection along z and the middle z slice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class CamTarget:
    """Where Grad-CAM reads activations: a module, and for token maps the grid and prefix tokens."""

    module: nn.Module
    grid: tuple[int, ...] | None = None  # patch grid of a token map; None for a CNN feature map
    prefix: int = 0  # class / register tokens before the patch tokens


def _token_blocks(model: nn.Module) -> nn.Module | None:
    """The last block of a transformer's `blocks` container, if the model has one."""
    for name, module in reversed(list(model.named_modules())):
        if name.split(".")[-1] == "blocks" and isinstance(module, (nn.Sequential, nn.ModuleList)) and len(module):
            return module[-1]
    return None


def find_target(model: nn.Module, x: torch.Tensor) -> CamTarget:
    """Run one image through `model` once to see which modules give spatial or token maps."""
    order: list[tuple[nn.Module, tuple[int, ...]]] = []
    block = _token_blocks(model)
    watched = [m for m in model.modules() if not list(m.children())]
    # the token embedding: timm's `patch_embed`, our ViT's `embed` (a convolution whose map is the token grid)
    embed = next((m for n, m in model.named_modules() if n.split(".")[-1] in ("patch_embed", "embed")), None)
    hooks = [m.register_forward_hook(lambda m, _i, o: order.append((m, tuple(o.shape)))
                                     if isinstance(o, torch.Tensor) else None)
             for m in {*watched, *(m for m in (block, embed) if m is not None)}]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in hooks:
            h.remove()
    spatial = [m for m, shape in order if len(shape) == x.ndim and math.prod(shape[2:]) > 1]
    block_shape = next((s for m, s in order if m is block), None)
    if block is not None and block_shape is not None and len(block_shape) == 3:
        grid = tuple(getattr(embed, "grid_size", ()) or ())
        if not grid:  # a convolutional patch embedding (our 3D ViT): its map has the grid's shape
            grid = next((s[2:] for m, s in order if m is embed and len(s) == x.ndim), ())
        if not grid:  # the number of patch tokens alone: assume a square (cubic) grid
            side = round((block_shape[1] - 1) ** (1 / (x.ndim - 2)))
            grid = (side,) * (x.ndim - 2)
        prefix = block_shape[1] - math.prod(grid)
        # Mean of the tokens into the head (our ViT): the last block's output, where Grad-CAM is each token's
        # linearised share of the class score (Zhou et al.'s CAM). A class token: only it reaches the head
        # after the last block, so the map is read where every patch token still feeds it, entering that
        # block's attention. On the left-half task, the default ViT put 0.86 of the map in the half that
        # decides the class from the block's output, 0.59 from its attention's input.
        target = block if prefix == 0 else getattr(block, "norm1", block)
        return CamTarget(target, tuple(int(g) for g in grid), prefix)
    if not spatial:
        raise ValueError("the model has no spatial feature map for Grad-CAM; use TEST.EXPLAIN.METHOD gradients")
    return CamTarget(spatial[-1])


def _normalise(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - low) / (high - low).clamp_min(1e-12)).view_as(maps)


def _resize(maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    mode = "bilinear" if len(size) == 2 else "trilinear"
    return F.interpolate(maps[:, None], size=size, mode=mode, align_corners=False)[:, 0]


def grad_cam(model: nn.Module, x: torch.Tensor, classes: torch.Tensor, target: CamTarget) -> torch.Tensor:
    """(N, *spatial) Grad-CAM maps in [0, 1] for `classes` (one index per image)."""
    saved: dict[str, torch.Tensor] = {}

    def keep(_module, _inputs, output):
        saved["act"] = output
        return output.clone()  # later in-place operations change the copy, not the map we differentiate

    handle = target.module.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)  # a path for gradients even when every layer is frozen
            logits = model(x)
            score = logits.gather(1, classes[:, None].to(logits.device)).sum()
            act = saved["act"]
            grads = torch.autograd.grad(score, act)[0]
    finally:
        handle.remove()
    act, grads = act.detach().float(), grads.float()
    if target.grid is not None:  # (N, tokens, dim) -> (N, dim, *grid)
        act, grads = (t[:, target.prefix:].transpose(1, 2).reshape(t.shape[0], t.shape[2], *target.grid)
                      for t in (act, grads))
    weights = grads.mean(dim=tuple(range(2, grads.ndim)), keepdim=True)
    cam = torch.relu((weights * act).sum(1))
    spatial = tuple(x.shape[2:])
    # A ViT that zero-pads its input to a multiple of the token size: the grid covers the padded size.
    padded = tuple(getattr(model, "size", spatial)) if target.grid is not None else spatial
    cam = _resize(cam, padded if len(padded) == len(spatial) else spatial)
    cam = cam[(slice(None), *(slice(0, s) for s in spatial))]
    return _normalise(cam)


def input_gradients(model: nn.Module, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """(N, *spatial) |d score / d input| in [0, 1], the largest over channels."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        logits = model(x)
        score = logits.gather(1, classes[:, None].to(logits.device)).sum()
        grads = torch.autograd.grad(score, x)[0]
    return _normalise(grads.abs().amax(1).float())


def saliency_maps(model: nn.Module, x: torch.Tensor, classes: torch.Tensor, method: str = "gradcam",
                  chunk: int = 32) -> np.ndarray:
    """(N, *spatial) maps in [0, 1] of prepared inputs `x` for `classes`, in chunks of `chunk` images."""
    model.eval()
    target = find_target(model, x) if method == "gradcam" else None
    parts = []
    for xs, cs in zip(x.split(chunk), classes.split(chunk)):
        maps = grad_cam(model, xs, cs, target) if target is not None else input_gradients(model, xs, cs)
        parts.append(maps.cpu())
    return torch.cat(parts).numpy()


# --------------------------------------------------------------------------------------- pictures
def display_planes(image: np.ndarray, saliency: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(title, picture (H, W) or (H, W, 3) in [0, 1], map (H, W)) to draw; `image` is (C, *spatial)."""
    picture = image[:3].transpose(*range(1, image.ndim), 0) if image.shape[0] == 3 else image[0]
    if saliency.ndim == 2:
        return [("", _stretch(picture), saliency)]
    middle = picture.shape[0] // 2
    return [("max projection", _stretch(picture.max(0)), saliency.max(0)),
            (f"slice z={middle}", _stretch(picture[middle]), saliency[middle])]


def _stretch(arr: np.ndarray) -> np.ndarray:
    low, high = np.percentile(arr, (0.5, 99.5))
    return np.clip((arr - low) / (high - low), 0, 1) if high > low else np.zeros_like(arr)


def overlay_png(image: np.ndarray, saliency: np.ndarray, path: Path, side: int = 128, alpha: float = 0.5) -> None:
    """The image and the map over it, side by side (twice for volumes: projection and middle slice)."""
    import matplotlib
    from PIL import Image

    cmap = matplotlib.colormaps["jet"]
    tiles = []
    for _, picture, smap in display_planes(image, saliency):
        grey = picture if picture.ndim == 3 else np.repeat(picture[..., None], 3, axis=2)
        heat = cmap(smap)[..., :3]
        for tile in (grey, (1 - alpha) * grey + alpha * heat):
            img = Image.fromarray((np.clip(tile, 0, 1) * 255).astype(np.uint8))
            scale = side / max(img.size)
            tiles.append(img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                                    Image.NEAREST if scale >= 1 else Image.BILINEAR))
    gap = 4
    canvas = Image.new("RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), max(t.height for t in tiles)),
                       (255, 255, 255))
    x = 0
    for tile in tiles:
        canvas.paste(tile, (x, 0))
        x += tile.width + gap
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def choose_examples(probs: np.ndarray, labels: np.ndarray | None, n_per_class: int,
                    n_extreme: int = 12) -> list[tuple[int, str]]:
    """(image index, kind) to explain. With labels: the most confidently misclassified ('error') and the
    `n_per_class` most confident correct images of each class ('correct'). Without: the most confident
    predictions of each predicted class ('confident') and the least confident overall ('uncertain')."""
    pred, confidence = probs.argmax(1), probs.max(1)
    order = np.argsort(-confidence, kind="stable")
    chosen: list[tuple[int, str]] = []
    if labels is not None:
        chosen += [(int(i), "error") for i in order[pred[order] != labels[order]][:n_extreme]]
        right = order[pred[order] == labels[order]]
        for k in range(probs.shape[1]):
            chosen += [(int(i), "correct") for i in right[labels[right] == k][:n_per_class]]
        return chosen
    for k in range(probs.shape[1]):
        chosen += [(int(i), "confident") for i in order[pred[order] == k][:n_per_class]]
    taken = {i for i, _ in chosen}
    chosen += [(int(i), "uncertain") for i in order[::-1][:n_extreme] if int(i) not in taken]
    return chosen
