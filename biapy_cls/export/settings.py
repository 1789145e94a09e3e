"""MODEL.BMZ.* resolved once into a typed value, and checked before any heavy work (BiaPy's checks, with
our error style): export metadata, the package to import, and the optional `bmz` extra being installed."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

from yacs.config import CfgNode as CN

from biapy_cls.errors import ConfigError

INSTALL = "pip install 'biapy-cls[bmz]'"
AUTHOR_KEYS = ("name", "affiliation", "email", "github_user", "orcid")
CITE_KEYS = ("text", "doi", "url")
DATASET_KEYS = ("name", "doi", "image_modality", "dataset_id")
AUTHOR_EXAMPLE = "[{'name': 'Daniel', 'github_user': 'danifranco'}]"
CITE_EXAMPLE = "[{'text': 'Gizmo et al.', 'doi': '10.1002/xyzacab123'}]"
DATASET_EXAMPLE = ("[{'name': 'CartoCell', 'doi': '10.1016/j.crmeth.2023.100597', "
                   "'image_modality': 'fluorescence microscopy'}]")


@dataclass(frozen=True)
class BmzExportSettings:
    """MODEL.BMZ.EXPORT, as the exporter uses it."""

    model_name: str
    description: str
    authors: list[dict] = field(default_factory=list)
    license: str = "CC-BY-4.0"
    documentation: str = ""  # a .md file, or "" = generated
    tags: list[str] = field(default_factory=list)
    cite: list[dict] = field(default_factory=list)
    dataset_info: dict = field(default_factory=dict)
    version: str = "0.1.0"
    reuse_bmz_config: bool = False

    @classmethod
    def from_cfg(cls, cfg: CN) -> BmzExportSettings:
        e = cfg.MODEL.BMZ.EXPORT
        info = e.DATASET_INFO[0] if isinstance(e.DATASET_INFO, (list, tuple)) and e.DATASET_INFO else {}
        return cls(str(e.MODEL_NAME), str(e.DESCRIPTION), [dict(a) for a in e.AUTHORS], str(e.LICENSE),
                   str(e.DOCUMENTATION), [str(t) for t in e.TAGS], [dict(c) for c in e.CITE], dict(info),
                   str(e.MODEL_VERSION), bool(e.REUSE_BMZ_CONFIG))

    @property
    def file_stem(self) -> str:
        """MODEL_NAME made safe as a file name: JOB/bmz/<file_stem>.zip."""
        return re.sub(r"[^\w.-]+", "_", self.model_name).strip("_") or "model"


def bmz_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("bioimageio.spec", "bioimageio.core"))


def require_bmz_extra(why: str) -> None:
    """Fail early, with the install command, when the optional `bmz` extra is missing."""
    if not bmz_installed():
        raise ConfigError(f"{why} needs the BioImage Model Zoo libraries (bioimageio.core and bioimageio.spec), "
                          f"which are not installed. Install them with: {INSTALL}")


def _check_dicts(key: str, items, allowed: tuple[str, ...], required: tuple[str, ...], example: str,
                 errors: list[str]) -> None:
    if not isinstance(items, (list, tuple)) or not all(isinstance(d, dict) for d in items):
        errors.append(f"{key} must be a list of dicts, e.g. {example}.")
        return
    for d in items:
        missing = [k for k in required if not d.get(k)]
        unknown = [k for k in d if k not in allowed]
        if missing:
            errors.append(f"{key}: the entry {d} lacks {', '.join(missing)}. E.g. {example}.")
        if unknown:
            errors.append(f"{key}: the entry {d} has unknown key(s) {', '.join(unknown)}; valid: {', '.join(allowed)}.")


def check_bmz(cfg: CN, errors: list[str]) -> None:
    """BiaPy's checks of MODEL.SOURCE bmz and MODEL.BMZ.EXPORT (check_configuration.py), collected as errors."""
    bmz, export = cfg.MODEL.BMZ, cfg.MODEL.BMZ.EXPORT
    if cfg.MODEL.SOURCE == "bmz" and not str(bmz.SOURCE_MODEL_ID).strip():
        errors.append("MODEL.SOURCE is bmz but MODEL.BMZ.SOURCE_MODEL_ID is empty: set it to a package folder, "
                      ".zip, URL or bioimage.io ID (e.g. 'affable-shark').")
    if cfg.MODEL.SOURCE != "bmz" and str(bmz.SOURCE_MODEL_ID).strip():
        errors.append(f"MODEL.BMZ.SOURCE_MODEL_ID is '{bmz.SOURCE_MODEL_ID}' but MODEL.SOURCE is "
                      f"'{cfg.MODEL.SOURCE}': set MODEL.SOURCE bmz to load that package, or remove the ID.")
    if not export.ENABLE:
        return
    pre = cfg.DATA.PREPROCESS
    if pre.TRAIN or pre.VAL or pre.TEST:
        # Resizing, CLAHE, Canny ... have no bioimage.io preprocessing step: the package would not run as trained.
        errors.append("MODEL.BMZ.EXPORT.ENABLE cannot be combined with DATA.PREPROCESS (TRAIN/VAL/TEST): the BioImage "
                      "Model Zoo format has no step for that preprocessing, so the exported model would see other "
                      "images than in training. Preprocess the images beforehand, or switch one of them off.")
    if export.REUSE_BMZ_CONFIG:
        if cfg.MODEL.SOURCE != "bmz":
            errors.append("MODEL.BMZ.EXPORT.REUSE_BMZ_CONFIG is True, but the model is not loaded from the BioImage "
                          "Model Zoo (MODEL.SOURCE bmz), so there is no package description to reuse. Set it False "
                          "and give MODEL_NAME, DESCRIPTION, AUTHORS, LICENSE and TAGS.")
        return
    for key in ("MODEL_NAME", "DESCRIPTION", "LICENSE"):
        if not str(export[key]).strip():
            errors.append(f"MODEL.BMZ.EXPORT.{key} must be set to export a model (take the models on "
                          "https://bioimage.io as reference).")
    if not export.AUTHORS:
        errors.append(f"MODEL.BMZ.EXPORT.AUTHORS: give at least one author, e.g. {AUTHOR_EXAMPLE}.")
    else:
        _check_dicts("MODEL.BMZ.EXPORT.AUTHORS", export.AUTHORS, AUTHOR_KEYS, ("name", "github_user"),
                     AUTHOR_EXAMPLE, errors)
    if not export.TAGS or not all(isinstance(t, str) and t.strip() for t in export.TAGS):
        errors.append("MODEL.BMZ.EXPORT.TAGS must be a non-empty list of words describing the data, e.g. "
                      "['electron-microscopy', 'mitochondria'].")
    _check_dicts("MODEL.BMZ.EXPORT.CITE", export.CITE, CITE_KEYS, ("text",), CITE_EXAMPLE, errors)
    for d in export.CITE if isinstance(export.CITE, (list, tuple)) else []:
        if isinstance(d, dict) and not (d.get("doi") or d.get("url")):
            errors.append(f"MODEL.BMZ.EXPORT.CITE: the entry {d} needs a 'doi' or a 'url'.")
    info = export.DATASET_INFO
    if not isinstance(info, (list, tuple)) or len(info) != 1 or not isinstance(info[0], dict):
        errors.append(f"MODEL.BMZ.EXPORT.DATASET_INFO must be a list with one dict, e.g. {DATASET_EXAMPLE}.")
    elif info[0]:
        _check_dicts("MODEL.BMZ.EXPORT.DATASET_INFO", info, DATASET_KEYS, ("name",), DATASET_EXAMPLE, errors)
    if not re.fullmatch(r"\d+\.\d+\.\d+", str(export.MODEL_VERSION)):
        errors.append(f"MODEL.BMZ.EXPORT.MODEL_VERSION is '{export.MODEL_VERSION}'; it must be MAJOR.MINOR.PATCH, "
                      "e.g. 0.1.0.")
    doc = str(export.DOCUMENTATION)
    if doc and not Path(doc).expanduser().is_file():
        errors.append(f"MODEL.BMZ.EXPORT.DOCUMENTATION '{doc}' is not a file; give a .md file, or leave it empty "
                      "to generate the documentation.")
    elif doc and not doc.endswith(".md"):
        errors.append(f"MODEL.BMZ.EXPORT.DOCUMENTATION '{doc}' must be a Markdown (.md) file.")


def check_bmz_installed(cfg: CN) -> None:
    """After the value checks: the extra must be there before anything is trained or written."""
    if cfg.MODEL.BMZ.EXPORT.ENABLE:
        require_bmz_extra("MODEL.BMZ.EXPORT.ENABLE (exporting to the BioImage Model Zoo)")
    if cfg.MODEL.SOURCE == "bmz":
        require_bmz_extra("MODEL.SOURCE bmz (loading a BioImage Model Zoo package)")
