"""Label-mixing augmentations on a normalised training batch: BiaPy's CUTMIX, MixUp and CutMix, 2D and 3D.

They turn (images, class indices) into (images, soft targets): each target is a probability vector over
the classes whose weights are the shares of the images it was mixed from, so the loss learns what the
image shows. The loss takes soft targets (engine/losses.py, label smoothing on top) and the training
accuracy counts each image's dominant label.

- AUGMENTOR.CUTMIX (BiaPy): per image with CUTMIX_PROB, a box of CMIX_SIZE of y and x (every z-slice) is
  copied from a random position of another image of the batch to a random position; the label weights
  are the shares of the image area.
- AUGMENTOR.MIXUP (alpha > 0, Zhang et al. 2018) and AUGMENTOR.CUTMIX_ALPHA (alpha > 0, Yun et al. 2019),
  as timm's Mixup in 'batch' mode: with probability MIXUP_PROB a batch is mixed with the batch in reverse
  order, by one lambda ~ Beta(alpha, alpha): MixUp blends the images, CutMix pastes a box of share
  1 - lambda (lambda then corrected to the box actually pasted after clipping at the borders; in 3D a box
  in z, y and x). With both alphas set, CutMix is chosen with probability MIXUP_SWITCH_PROB.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from yacs.config import CfgNode as CN

from biapy_cls.config.settings import augment_prob


@dataclass(frozen=True)
class MixSettings:
    cutmix_prob: float = 0.0  # BiaPy's CUTMIX, per image; 0 = off
    cmix_size: tuple[float, float] = (0.2, 0.4)
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    prob: float = 1.0
    switch_prob: float = 0.5

    @classmethod
    def from_cfg(cls, cfg: CN) -> MixSettings:
        aug = cfg.AUGMENTOR
        if not aug.ENABLE:
            return cls()
        cutmix_prob = augment_prob(aug, "CUTMIX_PROB") if aug.CUTMIX else 0.0
        return cls(cutmix_prob, (float(aug.CMIX_SIZE[0]), float(aug.CMIX_SIZE[1])), float(aug.MIXUP),
                   float(aug.CUTMIX_ALPHA), augment_prob(aug, "MIXUP_PROB"), augment_prob(aug, "MIXUP_SWITCH_PROB"))


class Mixer:
    """Call on (normalised images, class indices) -> (images, soft targets (n, n_classes))."""

    def __init__(self, settings: MixSettings, n_classes: int):
        self.s = settings
        self.n_classes = n_classes

    def __bool__(self) -> bool:
        s = self.s
        return s.cutmix_prob > 0 or (s.prob > 0 and (s.mixup_alpha > 0 or s.cutmix_alpha > 0))

    def describe(self) -> str:
        s, parts = self.s, []
        if s.cutmix_prob > 0:
            parts.append(f"CUTMIX (p={s.cutmix_prob:g}, box {s.cmix_size[0]:g}-{s.cmix_size[1]:g} of y and x)")
        if s.mixup_alpha > 0 and s.cutmix_alpha > 0:
            parts.append(f"MixUp (alpha {s.mixup_alpha:g}) or CutMix (alpha {s.cutmix_alpha:g}, "
                         f"p={s.switch_prob:g}) on p={s.prob:g} of the batches")
        elif s.mixup_alpha > 0 or s.cutmix_alpha > 0:
            name, alpha = ("MixUp", s.mixup_alpha) if s.mixup_alpha > 0 else ("CutMix", s.cutmix_alpha)
            parts.append(f"{name} (alpha {alpha:g}) on p={s.prob:g} of the batches")
        if not parts:
            return "none"
        return ("; ".join(parts) + ". Labels are mixed in proportion; the training accuracy counts each mixed "
                "image's dominant label")

    def __call__(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        targets = F.one_hot(labels, self.n_classes).to(torch.float32)
        if x.shape[0] < 2:
            return x, targets
        if self.s.cutmix_prob > 0:
            x, targets = self.biapy_cutmix(x, targets)
        s = self.s
        if (s.mixup_alpha > 0 or s.cutmix_alpha > 0) and float(torch.rand(())) < s.prob:
            use_cutmix = s.cutmix_alpha > 0 and (s.mixup_alpha <= 0 or float(torch.rand(())) < s.switch_prob)
            alpha = s.cutmix_alpha if use_cutmix else s.mixup_alpha
            lam = float(torch.distributions.Beta(alpha, alpha).sample())
            other = x.flip(0)
            if use_cutmix:
                box = _centred_box(x.shape[2:], 1.0 - lam, x.device)
                x = torch.where(box, other, x)
                lam = 1.0 - float(box.float().mean())
            else:
                x = lam * x + (1.0 - lam) * other
            targets = lam * targets + (1.0 - lam) * targets.flip(0)
        return x, targets

    def biapy_cutmix(self, x: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """BiaPy's cutmix (augmentors.py) with the label weights it needs for classification."""
        n, dev = x.shape[0], x.device
        h, w = x.shape[-2:]
        chosen = torch.rand(n, device=dev) < self.s.cutmix_prob
        partner = (torch.arange(n, device=dev) + torch.randint(1, n, (n,), device=dev)) % n  # never itself
        frac = torch.rand(n, device=dev) * (self.s.cmix_size[1] - self.s.cmix_size[0]) + self.s.cmix_size[0]
        ys, xs = (frac * h).round().clamp(1, h).long(), (frac * w).round().clamp(1, w).long()
        dst_y, dst_x = _start(h, ys), _start(w, xs)
        src_y, src_x = _start(h, ys), _start(w, xs)
        rows, cols = torch.arange(h, device=dev).view(1, h, 1), torch.arange(w, device=dev).view(1, 1, w)
        inside = ((rows >= dst_y.view(n, 1, 1)) & (rows < (dst_y + ys).view(n, 1, 1))
                  & (cols >= dst_x.view(n, 1, 1)) & (cols < (dst_x + xs).view(n, 1, 1)) & chosen.view(n, 1, 1))
        # where each destination pixel reads from: the partner's box, shifted
        read_y = (rows - dst_y.view(n, 1, 1) + src_y.view(n, 1, 1)).clamp(0, h - 1).expand(n, h, w)
        read_x = (cols - dst_x.view(n, 1, 1) + src_x.view(n, 1, 1)).clamp(0, w - 1).expand(n, h, w)
        flat = x[partner].reshape(n, -1, h * w)  # every channel (and z-slice) of the partner
        index = (read_y * w + read_x).reshape(n, 1, h * w).expand(-1, flat.shape[1], -1)
        pasted = flat.gather(2, index).reshape(x.shape)
        x = torch.where(inside.view(n, 1, *[1] * (x.ndim - 4), h, w), pasted, x)
        share = inside.flatten(1).float().mean(1, keepdim=True)  # area of the box that came from the partner
        return x, (1 - share) * targets + share * targets[partner]


def _start(size: int, length: torch.Tensor) -> torch.Tensor:
    return (torch.rand(length.shape, device=length.device) * (size - length + 1)).floor().long()


def _centred_box(spatial: tuple[int, ...], share: float, device) -> torch.Tensor:
    """timm's rand_bbox: a box whose sides are share^(1/d) of each axis, centred uniformly at random and
    clipped at the borders; (*spatial) boolean, the same for the whole batch."""
    ratio = share ** (1.0 / len(spatial))
    box = torch.ones(spatial, dtype=torch.bool, device=device)
    for axis, size in enumerate(spatial):
        cut = int(size * ratio)
        centre = int(torch.randint(0, size, ()))
        low, high = max(centre - cut // 2, 0), min(centre + cut // 2, size)
        pos = torch.arange(size, device=device).view(*[1] * axis, size, *[1] * (len(spatial) - axis - 1))
        box = box & (pos >= low) & (pos < high)
    return box
