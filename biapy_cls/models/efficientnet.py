"""EfficientNet B0-B7: 2D from timm, 3D from MONAI; never any weight download.

EfficientNets reduce the image 32 times (five stride-2 steps), made for 224x224 photographs. On a small
biomedical patch that leaves a 1x1 map after a few stages, or nothing to learn from. So stride-2 steps
run at stride 1 until the final map keeps `min_final` pixels along the longest axis. Which steps, and
the other choices for training from scratch on small data, are a Design, measured in docs/models.md
(issue 14: BiaPy's settings, AdamW 1e-3, no scheduler, 10 epochs on the digits):
- 2D (layouts 2 and 3): the stem first (the early, wide layers then see the full-resolution image), then
  the last stages, down to a 4-pixel final map (32x32 -> total stride 8); each residual block starts as the
  identity (zero-initialised last batch norm). Test accuracy 0.952 against layout 1's 0.906.
- 3D (layout 3): the same resolution as 2D: the stem at stride 1 in y-x (z, often thinner, still halved),
  then the last stages, down to a 4-pixel final map (16x32x32 -> y-x stride 8); PyTorch's batch-norm
  momentum 0.1 instead of MONAI's 0.01 (whose running statistics lag so far behind the weights in a short
  training that layout 1 tests at chance), no drop-connect (MONAI's 0.2 slows a short training),
  zero-initialised residual blocks. 0.963 against layout 2's 0.939, at ~3x its compute.
- 3D (layout 2): as layout 3 but the last stages first (the stem strided), down to a 2-pixel map.
- Layout 1 (biapy-cls before issue 14): the last stages first, down to 2 pixels, the libraries' defaults.

MONAI's 3D EfficientNet pads 'same' with paddings computed once for a cubic image size, which breaks on
anisotropic volumes such as 16x32x32; its convolutions get symmetric padding (k // 2) instead, as
timm's efficientnet_bN have, which gives ceil(size / stride) for every size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from torch import nn

from biapy_cls.errors import CheckpointError
from biapy_cls.models import ModelSpec, dropout_rate

log = logging.getLogger("biapy_cls")

VARIANTS = [f"efficientnet_b{i}" for i in range(8)]
FULL_STRIDE = 32  # the stem and four strided stages, 2 each
MIN_FINAL = 2  # pixels that the last feature map keeps along the longest axis


@dataclass(frozen=True)
class Design:
    """Choices for training from scratch on small data; bench/model_ablation.py switches them one at a time.
    None keeps the library's own value (timm 2D: momentum 0.1, no drop-path; MONAI 3D: momentum 0.01,
    drop-connect 0.2 for B0)."""

    bn_momentum: float | None = None  # PyTorch convention: weight of the new batch in the running stats
    drop_path: float | None = None  # stochastic depth rate of the last block (timm drop_path_rate)
    first_to_keep: str = "last"  # at small sizes: "last" stride-2 stages run at stride 1 first, or the "stem"
    min_final: int = MIN_FINAL  # pixels the last feature map keeps along the longest axis
    stem_stride_z: int = 1  # 3D: z stride of a stem that runs at stride 1 in y-x (2: z, often thinner, halved)
    warmup_epochs: float = 0.0  # linear LR warm-up when TRAIN.LR_SCHEDULER names none (engine.optim)
    zero_init_last: bool = False  # each residual block starts as the identity (its last BN's scale 0)


LEGACY = Design()  # layout 1: biapy-cls before issue 14
DESIGN = Design(first_to_keep="stem", min_final=4, zero_init_last=True)  # 2D, layouts 2 and 3
LAYOUT_2_3D = Design(bn_momentum=0.1, drop_path=0.0, zero_init_last=True)  # 3D, layout 2: frozen
DESIGN_3D = replace(LAYOUT_2_3D, first_to_keep="stem", stem_stride_z=2, min_final=4)  # 3D, layout 3
LAYOUT = 3  # must match biapy_cls.models.LAYOUTS


def strides_to_drop(spatial: tuple[int, ...], min_final: int = MIN_FINAL) -> int:
    """How many of the stride-2 steps to run at stride 1 for this patch size."""
    longest = max(spatial)
    drop = 0
    # padding gives ceil(size / stride) pixels at the end
    while drop < 4 and -(-longest // (FULL_STRIDE >> drop)) < min_final:
        drop += 1
    return drop


def _split_drop(spec: ModelSpec, design: Design) -> tuple[bool, int]:
    """(run the stem at stride 1, how many of the last strided stages run at stride 1)."""
    dropped = strides_to_drop(spec.spatial, design.min_final)
    if design.first_to_keep == "stem" and dropped:
        return True, dropped - 1
    return False, dropped


def _set_bn_momentum(model: nn.Module, momentum: float | None) -> None:
    if momentum is None:
        return
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum


def _zero_init_last(model: nn.Module, enabled: bool) -> None:
    """Zero the scale of the batch norm that ends each residual branch (Goyal et al. 2017): every block
    then starts as the identity, and the deep network trains like a shallow one in its first steps."""
    if not enabled:
        return
    for block in model.modules():
        if getattr(block, "has_skip", False) and hasattr(block, "bn3"):  # timm InvertedResidual
            nn.init.zeros_(block.bn3.weight)
        elif getattr(block, "has_skip", False) and hasattr(block, "bn2"):  # timm DepthwiseSeparableConv
            nn.init.zeros_(block.bn2.weight)
        elif hasattr(block, "_project_conv") and getattr(block, "id_skip", False) and block.stride == 1 and (
                block.in_channels == block.out_channels):  # MONAI MBConvBlock
            nn.init.zeros_(block._bn2.weight)


def _timm_2d(spec: ModelSpec, variant: str, drop_rate: float, design: Design) -> nn.Module:
    import timm

    extra = {} if design.drop_path is None else {"drop_path_rate": design.drop_path}
    model = timm.create_model(variant, pretrained=False, in_chans=spec.in_channels, num_classes=spec.n_classes,
                              drop_rate=drop_rate, **extra)
    # timm's efficientnet_bN use symmetric padding, so a stride can change without touching the padding.
    stem, n_stages = _split_drop(spec, design)
    if stem:
        model.conv_stem.stride = (1, 1)
    strided = [stage[0].conv_dw for stage in model.blocks if stage[0].conv_dw.stride != (1, 1)]
    for conv in strided[len(strided) - n_stages:]:
        conv.stride = (1, 1)
    _set_bn_momentum(model, design.bn_momentum)
    _zero_init_last(model, design.zero_init_last)
    return model


# MONAI's EfficientNet-B0 stages; the stride is the two digits after 's' (s22 = 2, s11 = 1).
MONAI_BLOCKS = [
    "r1_k3_s11_e1_i32_o16_se0.25",
    "r2_k3_s22_e6_i16_o24_se0.25",
    "r2_k5_s22_e6_i24_o40_se0.25",
    "r3_k3_s22_e6_i40_o80_se0.25",
    "r3_k5_s11_e6_i80_o112_se0.25",
    "r4_k5_s22_e6_i112_o192_se0.25",
    "r1_k3_s11_e6_i192_o320_se0.25",
]


def _monai_3d(spec: ModelSpec, variant: str, drop_rate: float, design: Design) -> nn.Module:
    from monai.networks.nets.efficientnet import EfficientNet, efficientnet_params

    width, depth, _, _, drop_connect = efficientnet_params[variant.replace("_", "-")]
    if design.drop_path is not None:
        drop_connect = design.drop_path
    stem, n_stages = _split_drop(spec, design)
    blocks = list(MONAI_BLOCKS)
    strided = [i for i, b in enumerate(blocks) if "_s22_" in b]
    for i in strided[len(strided) - n_stages:]:
        blocks[i] = blocks[i].replace("_s22_", "_s11_")
    model = EfficientNet(blocks, spatial_dims=3, in_channels=spec.in_channels, num_classes=spec.n_classes,
                         width_coefficient=width, depth_coefficient=depth, dropout_rate=drop_rate,
                         image_size=max(spec.spatial), drop_connect_rate=drop_connect)
    if stem:
        model._conv_stem.stride = (design.stem_stride_z, 1, 1)
    _set_bn_momentum(model, design.bn_momentum)
    _zero_init_last(model, design.zero_init_last)
    for module in list(model.modules()):
        if isinstance(module, nn.Conv3d):
            module.padding = tuple(k // 2 for k in module.kernel_size)
        for name, child in list(module.named_children()):
            if name.endswith("_padding"):
                setattr(module, name, nn.Identity())
    return model


def design_for(spec: ModelSpec) -> Design:
    """The design of the checkpoint's layout: layout 1 checkpoints are rebuilt as they were trained."""
    if spec.layout > LAYOUT:
        raise CheckpointError(f"This {spec.architecture} checkpoint has model layout {spec.layout}, newer than this "
                              f"biapy-cls knows ({LAYOUT}). Update biapy-cls to use it.")
    # The current layout is built with DESIGN / DESIGN_3D (which bench/model_ablation.py changes); older ones
    # with their own frozen design. Layout 3 changed only 3D.
    if spec.layout == 1:
        return LEGACY
    if spec.ndim == "3D":
        return DESIGN_3D if spec.layout == LAYOUT else LAYOUT_2_3D
    return DESIGN


def build_efficientnet(spec: ModelSpec, model_cfg=None) -> nn.Module:
    """The variant spec.architecture names (efficientnet_b0 ... b7, or BiaPy's EfficientNetB0 spelling)."""
    variant = spec.architecture.strip().lower().replace("-", "_").replace("efficientnetb", "efficientnet_b")
    if variant not in VARIANTS:
        raise ValueError(f"{spec.architecture} is not an EfficientNet variant ({', '.join(VARIANTS)})")
    drop_rate = dropout_rate(model_cfg, 0.2)  # timm's own default dropout when DROPOUT_VALUES is empty
    design = design_for(spec)
    dropped = strides_to_drop(spec.spatial, design.min_final)
    if dropped:
        stem, stages = _split_drop(spec, design)
        yx_only = stem and spec.ndim == "3D" and design.stem_stride_z > 1  # the stem still halves z
        which = " and ".join(part for part in (("the stem (in y-x)" if yx_only else "the stem") if stem else "",
                                               f"the last {stages} stage(s)" if stages else "") if part)
        log.info(f"{variant}: {'x'.join(map(str, spec.spatial))} patches are small, so {which} of its 5 stride-2 "
                 f"steps run at stride 1 (total stride {FULL_STRIDE >> dropped}{' in y-x' if yx_only else ''}).")
    build = _monai_3d if spec.ndim == "3D" else _timm_2d
    model = build(spec, variant, drop_rate, design)
    model.warmup_epochs = design.warmup_epochs  # read by engine.optim.auto_warmup_steps
    return model
