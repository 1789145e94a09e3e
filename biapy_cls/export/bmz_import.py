"""MODEL.SOURCE bmz: a BioImage Model Zoo package as the run's model.

The package (folder, rdf.yaml, zip, URL, or bioimage.io ID/DOI, downloaded and cached by bioimageio.spec) must
be a classifier: one input (batch, channel, space axes) and one output of one value per class per image
(batch, channel). Anything else is refused with the reason. Its weights become a torch module
(pytorch_state_dict through bioimageio.core, or torchscript), wrapped in `BmzNet`, which takes our batches
(raw values / value range, see transforms.to_unit), applies the package's own preprocessing to the raw values
and returns logits, so that training, the loss and `predict` work unchanged. A package that outputs
probabilities gives log-probabilities, whose softmax is those probabilities again.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import nn

from biapy_cls.data.dataset import ImageSpec
from biapy_cls.errors import ConfigError
from biapy_cls.export.settings import require_bmz_extra

log = logging.getLogger("biapy_cls")
SUPPORTED_OPS = ("ensure_dtype", "scale_linear", "clip", "zero_mean_unit_variance", "fixed_zero_mean_unit_variance",
                 "scale_range", "binarize")


@dataclass
class BmzPackage:
    """A loaded package and what the run needs from it."""

    source: str
    descr: object  # bioimageio.spec ModelDescr (spec 0.5)
    class_names: list[str]
    spec: ImageSpec
    axes: list[str]  # input axis ids in the package's order, e.g. ['batch', 'channel', 'y', 'x']
    probabilities: bool  # outputs probabilities (else logits)
    ours: dict | None  # config.biapy_cls of a package written by biapy-cls

    @property
    def name(self) -> str:
        return str(self.descr.name)


def _refuse(source: str, why: str) -> ConfigError:
    return ConfigError(f"MODEL.BMZ.SOURCE_MODEL_ID '{source}' cannot be used: {why} biapy-cls loads classification "
                       "models only: one input image (batch, channel and 2 or 3 space axes) and one output of one "
                       "value per class per image (batch, channel).")


def _axis_size(axis, source: str) -> int:
    size = axis.size
    if isinstance(size, int):
        return size
    if hasattr(size, "min") and hasattr(size, "step"):  # ParameterizedSize: min + n*step, take the smallest
        return int(size.min)
    raise _refuse(source, f"its input axis '{axis.id}' has a size given relative to another tensor.")


def _describe(source: str, descr) -> BmzPackage:
    if len(descr.inputs) != 1 or len(descr.outputs) != 1:
        raise _refuse(source, f"it has {len(descr.inputs)} inputs and {len(descr.outputs)} outputs.")
    inp, out = descr.inputs[0], descr.outputs[0]
    in_types = [a.type for a in inp.axes]
    space = [str(a.id) for a in inp.axes if a.type == "space"]
    if in_types.count("batch") != 1 or in_types.count("channel") != 1 or len(space) not in (2, 3) \
            or len(in_types) != len(space) + 2:
        raise _refuse(source, f"its input axes are {[str(a.id) for a in inp.axes]}.")
    out_types = sorted(a.type for a in out.axes)
    if out_types != ["batch", "channel"]:
        raise _refuse(source, f"its output axes are {[str(a.id) for a in out.axes]}: it does not output one vector "
                              "per image (a segmentation or image-to-image model outputs images).")
    channels = next(a for a in inp.axes if a.type == "channel")
    sizes = {str(a.id): _axis_size(a, source) for a in inp.axes if a.type == "space"}
    order = ["z", "y", "x"] if len(space) == 3 else ["y", "x"]
    if sorted(space) != sorted(order):
        raise _refuse(source, f"its space axes are {space}, not {order}.")
    classes = next(a for a in out.axes if a.type == "channel")
    config = descr.config.model_dump() if hasattr(descr.config, "model_dump") else dict(descr.config or {})
    ours = config.get("biapy_cls")
    post = [str(p.id) for p in out.postprocessing]
    data_range = getattr(out.data, "range", None)
    probabilities = ("softmax" in post or (ours or {}).get("output") == "probabilities"
                     or tuple(data_range or ()) == (0.0, 1.0))
    spec = ImageSpec("3D" if len(space) == 3 else "2D", tuple(sizes[a] for a in order), len(channels.channel_names))
    return BmzPackage(source, descr, [str(c) for c in classes.channel_names], spec, [str(a.id) for a in inp.axes],
                      probabilities, ours)


@functools.lru_cache(maxsize=4)
def load_package(source: str) -> BmzPackage:
    """Load and check the package (downloads a remote one once, into bioimageio.spec's cache)."""
    require_bmz_extra("MODEL.SOURCE bmz")
    from bioimageio.spec import InvalidDescr, load_description, settings

    from biapy_cls.export.offline import allow_offline, github_users

    try:
        allow_offline(github_users(source))
        descr = load_description(source, format_version="latest")
    except Exception as err:  # noqa: BLE001 - network, zip and YAML errors all mean the same to the user
        raise ConfigError(
            f"MODEL.BMZ.SOURCE_MODEL_ID '{source}' could not be loaded ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:300] if str(err) else ''}). If it is a bioimage.io ID, DOI or URL and this "
            "machine is offline, download the model's zip from https://bioimage.io on a machine with internet, copy "
            f"it here and set MODEL.BMZ.SOURCE_MODEL_ID to the zip's path (downloads are cached in "
            f"'{settings.cache_path}')."
        ) from None
    if isinstance(descr, InvalidDescr):
        raise ConfigError(f"MODEL.BMZ.SOURCE_MODEL_ID '{source}' is not a valid bioimage.io package:\n"
                          + descr.validation_summary.format())
    if descr.type != "model":
        raise _refuse(source, f"it is a bioimage.io {descr.type}, not a model.")
    return _describe(source, descr)


def _reduce_dims(op_axes, axes: list[str]) -> tuple[int, ...]:
    """Tensor dims to reduce over: the op's axes, or all but batch (each image on its own)."""
    names = [str(a) for a in op_axes] if op_axes else [a for a in axes if a != "batch"]
    return tuple(axes.index(a) for a in names if a in axes)


def _along(values, axis, axes: list[str], x: torch.Tensor) -> torch.Tensor:
    """A scalar, or per-entry values along `axis`, shaped to broadcast against `x`."""
    t = torch.as_tensor(values, dtype=x.dtype, device=x.device)
    if t.ndim == 0 or axis is None:
        return t
    shape = [1] * x.ndim
    shape[axes.index(str(axis))] = -1
    return t.view(shape)


def _quantile(x: torch.Tensor, q: float, dims: tuple[int, ...]) -> torch.Tensor:
    keep = [d for d in range(x.ndim) if d not in dims]
    moved = x.permute(*keep, *dims).reshape(*[x.shape[d] for d in keep], -1)
    values = torch.quantile(moved, q / 100.0, dim=-1)
    for d in sorted(dims):
        values = values.unsqueeze(d)
    return values


def apply_op(op, x: torch.Tensor, axes: list[str]) -> torch.Tensor:
    """One bioimage.io spec 0.5 preprocessing step, on a batch in the package's axis order."""
    kind, kw = str(op.id), op.kwargs
    if kind == "ensure_dtype":
        return x.float()
    if kind == "scale_linear":
        axis = getattr(kw, "axis", None)
        return x * _along(kw.gain, axis, axes, x) + _along(kw.offset, axis, axes, x)
    if kind == "binarize":
        return (x > _along(kw.threshold, getattr(kw, "axis", None), axes, x)).float()
    if kind == "fixed_zero_mean_unit_variance":
        axis = getattr(kw, "axis", None)
        return (x - _along(kw.mean, axis, axes, x)) / _along(kw.std, axis, axes, x)
    dims = _reduce_dims(getattr(kw, "axes", None), axes)
    if kind == "zero_mean_unit_variance":
        mean = x.mean(dim=dims, keepdim=True)
        std = (x - mean).square().mean(dim=dims, keepdim=True).sqrt()
        return (x - mean) / (std + kw.eps)
    if kind == "scale_range":
        low, high = _quantile(x, kw.min_percentile, dims), _quantile(x, kw.max_percentile, dims)
        return (x - low) / (high - low + kw.eps)
    if kind == "clip":  # bounds measured before clipping either side
        low = kw.min if kw.min is not None else (
            _quantile(x, kw.min_percentile, dims) if kw.min_percentile is not None else None)
        high = kw.max if kw.max is not None else (
            _quantile(x, kw.max_percentile, dims) if kw.max_percentile is not None else None)
        if low is not None:
            x = torch.maximum(x, torch.as_tensor(low, dtype=x.dtype, device=x.device))
        if high is not None:
            x = torch.minimum(x, torch.as_tensor(high, dtype=x.dtype, device=x.device))
        return x
    raise ValueError(kind)


def _plain_op(op) -> SimpleNamespace:
    """A preprocessing step as plain values (the spec's objects hold file readers that cannot be copied)."""
    return SimpleNamespace(id=str(op.id), kwargs=SimpleNamespace(**op.kwargs.model_dump()))


class BmzNet(nn.Module):
    """Our batch (N, C, [Z,] Y, X), raw values / value_range -> the package's preprocessing -> logits."""

    def __init__(self, net: nn.Module, package: BmzPackage, value_range: float, probabilities: bool):
        super().__init__()
        self.net, self.probabilities = net, probabilities
        self.register_buffer("value_range", torch.tensor(float(value_range)))
        ours = ["batch", "channel", *(["z", "y", "x"] if package.spec.ndim == "3D" else ["y", "x"])]
        self.axes = list(package.axes)
        self.permutation = [ours.index(a) for a in self.axes]
        self.ops = [_plain_op(op) for op in package.descr.inputs[0].preprocessing]
        out_types = [str(a.type) for a in package.descr.outputs[0].axes]
        self.out_permutation = [out_types.index("batch"), out_types.index("channel")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x * self.value_range).permute(*self.permutation)
        for op in self.ops:
            x = apply_op(op, x, self.axes)
        out = self.net(x).permute(*self.out_permutation)
        return torch.log(out.clamp_min(1e-30)) if self.probabilities else out


def _weights_module(package: BmzPackage) -> tuple[nn.Module, bool]:
    """(torch module, outputs probabilities) from the package's weights."""
    weights = package.descr.weights
    if weights.pytorch_state_dict is not None:
        from bioimageio.core.backends.pytorch_backend import load_torch_model

        module = load_torch_model(weights.pytorch_state_dict, load_state=True, devices=["cpu"])
        if package.ours is not None and isinstance(getattr(module, "net", None), nn.Module):
            return module.net, False  # our own export: the logits before its softmax
        return module, package.probabilities
    if weights.torchscript is not None:
        from bioimageio.spec.utils import download

        path = download(weights.torchscript.source).path
        return torch.jit.load(str(path), map_location="cpu"), package.probabilities
    formats = [f for f in ("onnx", "tensorflow_saved_model_bundle", "keras_hdf5") if getattr(weights, f, None)]
    raise _refuse(package.source, f"it has only {', '.join(formats)} weights; biapy-cls runs and fine-tunes "
                                  "pytorch_state_dict or torchscript weights.")


def _new_head(module: nn.Module, n_old: int, n_classes: int, source: str) -> None:
    """Replace the last Linear layer with n_old outputs by a new one with n_classes (fine-tuning)."""
    last = None
    for name, child in module.named_modules():
        if isinstance(child, nn.Linear) and child.out_features == n_old:
            last = name
    if last is None:
        raise _refuse(source, f"its output has {n_old} classes, the data {n_classes}, and no final Linear layer with "
                              f"{n_old} outputs was found to replace.")
    parent = module.get_submodule(last.rsplit(".", 1)[0]) if "." in last else module
    old = module.get_submodule(last)
    setattr(parent, last.rsplit(".", 1)[-1], nn.Linear(old.in_features, n_classes, bias=old.bias is not None))
    log.info(f"New classification head '{last}': {n_old} -> {n_classes} classes.")


def build_bmz_model(package: BmzPackage, value_range: float, n_classes: int | None = None) -> BmzNet:
    """The package's network for our pipeline; a new head when `n_classes` differs from the package's."""
    module, probabilities = _weights_module(package)
    n_old = len(package.class_names)
    if n_classes is not None and n_classes != n_old:
        _new_head(module, n_old, n_classes, package.source)
    unsupported = [str(op.id) for op in package.descr.inputs[0].preprocessing if str(op.id) not in SUPPORTED_OPS]
    if unsupported:
        raise _refuse(package.source, f"its preprocessing uses {', '.join(unsupported)}, which biapy-cls does not "
                                      f"apply (supported: {', '.join(SUPPORTED_OPS)}).")
    return BmzNet(module.float().train(False), package, value_range, probabilities)
