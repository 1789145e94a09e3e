"""EfficientNet B0-B7: 2D from timm, 3D from MONAI; never any weight download.

EfficientNets reduce the image 32 times (five stride-2 steps), made for 224x224 photographs. On a small
biomedical patch that leaves a 1x1 map after a few stages, or nothing to learn from. So strided steps
are turned into stride 1, from the last one backwards, until the final map keeps at least 2 pixels
along the longest axis (32x32 and 16x32x32 -> total stride 16). The last steps are the cheap ones to
keep at full resolution: their maps are the smallest.

MONAI's 3D EfficientNet pads 'same' with paddings computed once for a cubic image size, which breaks on
anisotropic volumes such as 16x32x32; its convolutions get symmetric padding (k // 2) instead, as
timm's efficientnet_bN have, which gives ceil(size / stride) for every size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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


LEGACY = Design()  # layout 1: biapy-cls before issue 14
DESIGN = Design()
LAYOUT = 1  # must match biapy_cls.models.LAYOUTS


def strides_to_drop(spatial: tuple[int, ...]) -> int:
    """How many of the four strided stages to run at stride 1 for this patch size."""
    longest = max(spatial)
    drop = 0
    # padding gives ceil(size / stride) pixels at the end
    while drop < 4 and -(-longest // (FULL_STRIDE >> drop)) < MIN_FINAL:
        drop += 1
    return drop


def _split_drop(spec: ModelSpec, design: Design) -> tuple[bool, int]:
    """(run the stem at stride 1, how many of the last strided stages run at stride 1)."""
    dropped = strides_to_drop(spec.spatial)
    if design.first_to_keep == "stem" and dropped:
        return True, dropped - 1
    return False, dropped


def _set_bn_momentum(model: nn.Module, momentum: float | None) -> None:
    if momentum is None:
        return
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum


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
        model._conv_stem.stride = (1, 1, 1)
    _set_bn_momentum(model, design.bn_momentum)
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
    # The current layout is built with DESIGN (which bench/model_ablation.py changes); only older ones with
    # their own frozen design. (`== 1` made every EfficientNet LEGACY while LAYOUT is 1: the ablation a no-op.)
    return LEGACY if spec.layout < LAYOUT else DESIGN


def build_efficientnet(spec: ModelSpec, model_cfg=None) -> nn.Module:
    """The variant spec.architecture names (efficientnet_b0 ... b7, or BiaPy's EfficientNetB0 spelling)."""
    variant = spec.architecture.strip().lower().replace("-", "_").replace("efficientnetb", "efficientnet_b")
    if variant not in VARIANTS:
        raise ValueError(f"{spec.architecture} is not an EfficientNet variant ({', '.join(VARIANTS)})")
    drop_rate = dropout_rate(model_cfg, 0.2)  # timm's own default dropout when DROPOUT_VALUES is empty
    dropped = strides_to_drop(spec.spatial)
    if dropped:
        log.info(f"{variant}: {'x'.join(map(str, spec.spatial))} patches are small, so {dropped} of its 5 "
                 f"stride-2 steps run at stride 1 (total stride {FULL_STRIDE >> dropped}).")
    design = design_for(spec)
    if spec.ndim == "3D":
        return _monai_3d(spec, variant, drop_rate, design)
    return _timm_2d(spec, variant, drop_rate, design)
