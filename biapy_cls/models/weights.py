"""Where pretrained weights live and how they get there: torch hub's cache (TORCH_HOME) for torchvision,
the Hugging Face cache (HF_HOME) for timm, each downloaded once with a progress bar.

Every function here is called while the run is being planned, before anything is written: a missing
file that cannot be downloaded stops the run with a WeightsUnavailable error naming the file expected,
the cache folder, the URL and how to place the file by hand.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from urllib.parse import urlparse

import torch

from biapy_cls.errors import WeightsUnavailable

log = logging.getLogger("biapy_cls")


def torch_hub_file(url: str) -> Path:
    """Where torch.hub.load_state_dict_from_url caches `url` (read at each call: TORCH_HOME may change)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, as huggingface_hub resolves it, but read now rather than at import."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "huggingface"
    return Path(home).expanduser() / "hub"


def hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "on", "yes", "true")


def unavailable(what: str, file: Path, url: str, err: BaseException | str, how: str, switch: str) -> WeightsUnavailable:
    if not isinstance(err, str):
        err = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
    reason = err
    return WeightsUnavailable(
        f"The pretrained weights {what} are not in the cache and could not be downloaded ({reason}). "
        f"Expected file: '{file}' (cache folder '{file.parent}'). URL: {url} . To run offline, {how} "
        f"Or set {switch} False to start from random weights, or MODEL.PRETRAINED_WEIGHTS to a local weights file."
    )


def fetch_url(url: str, what: str, switch: str) -> Path:
    """The torch hub cache file of `url`, downloaded (with torchvision's hash check) when absent."""
    file = torch_hub_file(url)
    if file.is_file():
        return file
    how = (f"download the URL on a machine with internet and copy the file to exactly '{file}' (keep its name; "
           "set TORCH_HOME to use another cache folder).")
    log.info(f"Downloading the pretrained weights {what} from {url} to '{file}'")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        match = re.search(r"-([a-f0-9]+)\.", file.name)  # torchvision names files <name>-<sha256 prefix>.pth
        torch.hub.download_url_to_file(url, str(file), hash_prefix=match.group(1) if match else None, progress=True)
    except Exception as err:  # noqa: BLE001 - network, disk and hash errors all mean the same to the user
        file.unlink(missing_ok=True)
        raise unavailable(what, file, url, err, how, switch) from None
    return file


HF_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm looks for on the hub, in its order


def fetch_hf(repo_id: str, what: str, switch: str) -> Path:
    """timm's weights of `repo_id` from the Hugging Face cache (HF_HOME), downloaded when absent."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    cache = hf_cache_dir()
    for name in HF_FILES:
        found = try_to_load_from_cache(repo_id, name, cache_dir=str(cache))
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    expected = cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / "<revision>" / HF_FILES[0]
    url = f"https://huggingface.co/{repo_id}/resolve/main/{HF_FILES[0]}"
    how = (f"run `huggingface-cli download {repo_id} {HF_FILES[0]}` on a machine with internet and copy its "
           f"folder '{expected.parents[2].name}' into '{cache}' (refs/main names the snapshot folder), or download "
           "the URL and give the file as MODEL.PRETRAINED_WEIGHTS.")
    if hf_offline():
        raise unavailable(what, expected, url, "HF_HUB_OFFLINE is set", how, switch)
    log.info(f"Downloading the pretrained weights {what} from {url} into '{cache}'")
    error: Exception | None = None
    for name in HF_FILES:  # a few older repositories hold only pytorch_model.bin
        try:
            return Path(hf_hub_download(repo_id, name, cache_dir=str(cache)))
        except Exception as err:  # noqa: BLE001 - offline, missing repo file, disk full: same advice
            error = error or err
    raise unavailable(what, expected, url, error, how, switch)
