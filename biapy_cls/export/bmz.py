"""Export a trained classifier as a BioImage Model Zoo package (spec 0.5): JOB/bmz/<MODEL_NAME>.zip.

The package holds rdf.yaml, weights as pytorch_state_dict (with a standalone model.py where the
architecture allows), torchscript and onnx, a test input (a real image, raw values) with the
probabilities our own pipeline gives it, a cover and a README. It is validated by bioimageio.core's own
model test for every weights format before the zip is written; a format that does not pass is left out
with a warning, and a package whose pytorch_state_dict weights fail is an error.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode as CN

from biapy_cls.data.dataset import ImageSpec, LazyDataset
from biapy_cls.data.discover import SampleList
from biapy_cls.data.plan import DataPlan
from biapy_cls.data.transforms import Normalizer, to_unit
from biapy_cls.errors import UserError
from biapy_cls.export.architecture import CALLABLE, ProbabilityModel, model_kwargs, standalone_source
from biapy_cls.export.bmz_files import preprocessing_ops, write_cover, write_documentation
from biapy_cls.export.settings import BmzExportSettings, require_bmz_extra
from biapy_cls.models import ARCHITECTURES, ModelSpec, normalize_architecture
from biapy_cls.outputs import RunPaths

log = logging.getLogger("biapy_cls")
ONNX_OPSET = 18
TOLERANCE = {"absolute_tolerance": 1e-4, "relative_tolerance": 1e-3}


class ExportError(UserError):
    """The package could not be made valid."""


@dataclass
class ExportInputs:
    """What the exporter needs from the run, gathered by the workflow once."""

    model: nn.Module  # outputs logits
    model_spec: ModelSpec
    model_cfg: CN
    normalizer: Normalizer
    class_names: list[str]
    spec: ImageSpec
    samples: SampleList  # test images (or training images when there is no test set)
    counts: dict[str, dict[str, int]]  # split -> class name -> images
    metrics: dict | None
    cfg: CN
    source_descr: object | None = None  # the loaded package when MODEL.SOURCE is bmz


def _axes(spec: ImageSpec, class_names: list[str]):
    from bioimageio.spec.model.v0_5 import AxisId, BatchAxis, ChannelAxis, Identifier, SpaceInputAxis

    space = ("z", "y", "x") if spec.ndim == "3D" else ("y", "x")
    inputs = [BatchAxis(), ChannelAxis(channel_names=[Identifier(f"channel{i}") for i in range(spec.channels)]),
              *[SpaceInputAxis(id=AxisId(a), size=s) for a, s in zip(space, spec.spatial)]]
    outputs = [BatchAxis(), ChannelAxis(channel_names=list(class_names))]
    return inputs, outputs


def _weights(net: nn.Module, example: torch.Tensor, inputs: ExportInputs, folder: Path) -> dict:
    """Write every weights format that exports; the keyword arguments of WeightsDescr."""
    from bioimageio.spec.model.v0_5 import (
        ArchitectureFromFileDescr,
        ArchitectureFromLibraryDescr,
        OnnxWeightsDescr,
        PytorchStateDictWeightsDescr,
        TorchscriptWeightsDescr,
    )

    version = torch.__version__.split("+")[0]
    weights, parent = {}, None
    if normalize_architecture(inputs.model_spec.architecture) in ARCHITECTURES:  # not for a model loaded from a package
        torch.save(net.state_dict(), folder / "weights.pt")
        kwargs = model_kwargs(inputs.model_spec, inputs.model_cfg)
        source = standalone_source(inputs.model_spec.architecture)
        if source is not None:
            (folder / "model.py").write_text(source)
            arch = ArchitectureFromFileDescr(source=folder / "model.py", callable=CALLABLE, kwargs=kwargs)
        else:
            arch = ArchitectureFromLibraryDescr(import_from="biapy_cls.export.architecture", callable=CALLABLE,
                                                kwargs=kwargs)
        weights["pytorch_state_dict"] = PytorchStateDictWeightsDescr(source=folder / "weights.pt", architecture=arch,
                                                                     pytorch_version=version)
        parent = "pytorch_state_dict"
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecated in torch 2.x, still what BMZ consumers run
            traced = torch.jit.trace(net, example, check_trace=False)
        traced.save(str(folder / "weights_torchscript.pt"))
        weights["torchscript"] = TorchscriptWeightsDescr(source=folder / "weights_torchscript.pt",
                                                         pytorch_version=version, parent=parent)
    except Exception as err:  # noqa: BLE001 - any tracing failure only costs this format
        log.warning(f"BMZ export: no torchscript weights ({type(err).__name__}: {str(err).splitlines()[0][:200]}).")
    try:
        import onnx  # noqa: F401 - torch's exporter needs it

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter: dynamic batch axis
            torch.onnx.export(net, (example,), str(folder / "weights.onnx"), opset_version=ONNX_OPSET,
                              input_names=["input0"], output_names=["output0"], dynamo=False,
                              dynamic_axes={"input0": {0: "batch"}, "output0": {0: "batch"}})
        weights["onnx"] = OnnxWeightsDescr(source=folder / "weights.onnx", opset_version=ONNX_OPSET,
                                           parent=parent or ("torchscript" if "torchscript" in weights else None))
    except Exception as err:  # noqa: BLE001
        log.warning(f"BMZ export: no onnx weights ({type(err).__name__}: {str(err).splitlines()[0][:200]}).")
    return weights


def _test_tensors(net: nn.Module, inputs: ExportInputs, folder: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Up to 8 real images (raw values, float32) and the probabilities our own pipeline gives them."""
    n = min(8, len(inputs.samples))
    data = LazyDataset(inputs.samples.subset(np.arange(n)), inputs.spec)
    images = np.stack([data[i][0].numpy() for i in range(n)]).astype(np.float32)
    with torch.no_grad():
        x = torch.from_numpy(images)
        probs = net(inputs.normalizer(to_unit(x, data.value_range), data.value_range)).numpy()
    np.save(folder / "test_input.npy", images[:1])
    np.save(folder / "test_output.npy", probs[:1].astype(np.float32))
    return images, probs, data.value_range


def _check_github_users(people: list[dict]) -> None:
    from biapy_cls.export.offline import allow_offline

    try:
        allow_offline(p["github_user"] for p in people if p.get("github_user"))
    except ValueError as err:
        raise ExportError(f"MODEL.BMZ.EXPORT.AUTHORS: {err}. Give the author's real GitHub user name.") from None


def _metadata(settings: BmzExportSettings, inputs: ExportInputs) -> dict:
    from bioimageio.spec.model.v0_5 import Author, CiteEntry, Doi, HttpUrl, LicenseId, Maintainer

    src = inputs.source_descr
    if settings.reuse_bmz_config and src is not None:
        return {"name": src.name, "description": src.description, "authors": src.authors, "cite": src.cite,
                "license": src.license, "tags": list(src.tags), "maintainers": src.maintainers}
    people = [{k: v for k, v in a.items() if v} for a in settings.authors]
    _check_github_users(people)
    cite = []
    for c in settings.cite:
        entry = {"text": c["text"]}
        if c.get("doi"):
            entry["doi"] = Doi(re.sub(r"^.*?(?=10\.)", "", str(c["doi"])))
        if c.get("url"):
            entry["url"] = HttpUrl(c["url"])
        cite.append(CiteEntry(**entry))
    tags = list(settings.tags)
    for tag in (inputs.spec.ndim.lower(), "pytorch", "biapy-cls", "classification",
                normalize_architecture(inputs.model_spec.architecture).replace("_", "-")):
        if tag not in tags:
            tags.append(tag)
    return {"name": settings.model_name, "description": settings.description,
            "authors": [Author(**p) for p in people], "maintainers": [Maintainer(**p) for p in people],
            "cite": cite, "license": LicenseId(settings.license), "tags": tags}


def build_description(settings: BmzExportSettings, inputs: ExportInputs, folder: Path, formats=None):
    """The ModelDescr of the package, its files written in `folder`."""
    from bioimageio.spec.model.v0_5 import (
        FileDescr,
        InputTensorDescr,
        IntervalOrRatioDataDescr,
        ModelDescr,
        OutputTensorDescr,
        TensorId,
        WeightsDescr,
    )

    net = ProbabilityModel(copy.deepcopy(inputs.model)).cpu().eval()
    images, probs, value_range = _test_tensors(net, inputs, folder)
    weights = _weights(net, torch.from_numpy(images[:1]), inputs, folder)
    if formats is not None:
        weights = {k: v for k, v in weights.items() if k in formats}
    in_axes, out_axes = _axes(inputs.spec, inputs.class_names)
    input_descr = InputTensorDescr(
        id=TensorId("input0"), axes=in_axes, test_tensor=FileDescr(source=folder / "test_input.npy"),
        data=IntervalOrRatioDataDescr(type="float32"),
        preprocessing=preprocessing_ops(inputs.normalizer, value_range, inputs.spec.ndim),
        description=f"raw image values, {inputs.spec.ndim}, {inputs.spec.channels} channel(s)")
    output_descr = OutputTensorDescr(
        id=TensorId("output0"), axes=out_axes, test_tensor=FileDescr(source=folder / "test_output.npy"),
        data=IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
        description="probability of each class (softmax)")
    doc = Path(settings.documentation).expanduser() if settings.documentation else write_documentation(
        folder / "README.md", name=settings.model_name or "model", description=settings.description,
        cfg=inputs.cfg, class_names=inputs.class_names, counts=inputs.counts, shape=(inputs.spec.channels,
        *inputs.spec.spatial), architecture=normalize_architecture(inputs.model_spec.architecture),
        normalizer=inputs.normalizer, metrics=inputs.metrics, formats=list(weights))
    if inputs.source_descr is not None and settings.reuse_bmz_config and inputs.source_descr.documentation:
        doc = inputs.source_descr.documentation
    cover = write_cover(folder / "cover.png", images, probs, inputs.class_names, inputs.spec.ndim)
    config = {"biapy_cls": {"class_names": list(inputs.class_names), "value_range": value_range,
                            "model_spec": inputs.model_spec.to_dict(), "normalizer": inputs.normalizer.state_dict(),
                            "output": "probabilities"}}
    training_data = None
    if settings.dataset_info.get("dataset_id"):
        from bioimageio.spec.dataset.v0_3 import LinkedDataset

        training_data = LinkedDataset(id=settings.dataset_info["dataset_id"])
    doc = doc if isinstance(doc, FileDescr) else FileDescr(source=doc)
    return ModelDescr(**_metadata(settings, inputs), documentation=doc, covers=[FileDescr(source=cover)],
                      inputs=[input_descr],
                      outputs=[output_descr], weights=WeightsDescr(**weights), version=settings.version,
                      training_data=training_data, config=config)


def _failed_formats(summary) -> set[str]:
    """Weights formats named in the failed details of a bioimageio.core test summary."""
    failed = set()
    for detail in summary.details:
        if detail.status == "failed":
            text = f"{detail.name} {detail.loc} {' '.join(str(e.msg) for e in detail.errors)}"
            failed.update(f for f in ("pytorch_state_dict", "torchscript", "onnx") if f in text)
    return failed


def export_bmz(settings: BmzExportSettings, inputs: ExportInputs, out_dir: Path) -> Path:
    """Build, test with bioimageio.core and write `out_dir/<MODEL_NAME>.zip`; returns its path."""
    require_bmz_extra("MODEL.BMZ.EXPORT.ENABLE")
    from bioimageio.core import test_model
    from bioimageio.spec import save_bioimageio_package

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".build-") as tmp:
        descr = build_description(settings, inputs, Path(tmp))
        formats = [f for f in ("pytorch_state_dict", "torchscript", "onnx") if getattr(descr.weights, f)]
        summary = test_model(descr, **TOLERANCE)
        failed = _failed_formats(summary) if summary.status == "failed" else set()
        if summary.status == "failed" and (not failed or "pytorch_state_dict" in failed or not set(formats) - failed):
            raise ExportError("The BioImage Model Zoo package did not pass bioimageio.core's model test:\n"
                              + summary.format())
        if failed:
            log.warning(f"BMZ export: {', '.join(sorted(failed))} weights did not reproduce the test output in "
                        "bioimageio.core's test and are left out.")
            formats = [f for f in formats if f not in failed]
            descr = build_description(settings, inputs, Path(tmp), formats)
            summary = test_model(descr, **TOLERANCE)
            if summary.status == "failed":
                raise ExportError("The BioImage Model Zoo package did not pass bioimageio.core's model test:\n"
                                  + summary.format())
        path = out_dir / f"{settings.file_stem}.zip"
        save_bioimageio_package(descr, output_path=path)
    log.info(f"BioImage Model Zoo package: {path} (weights: {', '.join(formats)}; bioimageio.core's model test "
             "passed for each)")
    return path


def _counts(plan: DataPlan) -> dict[str, dict[str, int]]:
    out = {}
    for split, samples in (("train", plan.train), ("validation", plan.val), ("test", plan.test)):
        if samples is not None and (samples.labels >= 0).all():
            n = np.bincount(samples.labels, minlength=len(plan.class_names))
            out[split] = {name: int(c) for name, c in zip(plan.class_names, n)}
    return out


def export_run(cfg: CN, paths: RunPaths, plan: DataPlan, model: nn.Module, model_spec: ModelSpec, model_cfg: CN,
               normalizer: Normalizer) -> Path:
    """The end of a run with MODEL.BMZ.EXPORT.ENABLE: JOB/bmz/<MODEL_NAME>.zip from this run's model."""
    metrics_file = paths.results_dir / "test_metrics.json"
    metrics = json.loads(metrics_file.read_text()) if cfg.TEST.ENABLE and metrics_file.exists() else None
    source_descr = None
    if cfg.MODEL.SOURCE == "bmz":
        from biapy_cls.export.bmz_import import load_package

        source_descr = load_package(str(cfg.MODEL.BMZ.SOURCE_MODEL_ID)).descr
    samples = next(s for s in (plan.test, plan.val, plan.train) if s is not None)
    inputs = ExportInputs(model, model_spec, model_cfg, normalizer, list(plan.class_names), plan.spec, samples,
                          _counts(plan), metrics, cfg, source_descr)
    log.info("Exporting the model to the BioImage Model Zoo format and testing it with bioimageio.core ...")
    settings = BmzExportSettings.from_cfg(cfg)
    if settings.reuse_bmz_config and source_descr is not None:
        settings = replace(settings, model_name=str(source_descr.name))
    return export_bmz(settings, inputs, paths.job_dir / "bmz")
