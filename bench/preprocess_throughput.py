"""DATA.PREPROCESS cost: images per second of each operation on one CPU thread, at 32x32 and 256x256.

Each operation runs through `Preprocessing` exactly as at loading (scikit-image call, conversion back to the
image's dtype) on real grey uint8 images (crops of skimage.data.camera, resized). In memory this cost is paid
once per image at loading, never per epoch; lazily (IN_MEMORY False) it is paid at every read. MATCH_HISTOGRAM
is also timed through scikit-image's own match_histograms with the pooled reference, which measures the
reference's histogram again on every call: the reason biapy-cls measures it once.

    python bench/preprocess_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from biapy_cls.config.defaults import get_cfg_defaults  # noqa: E402
from biapy_cls.data.preprocess import Preprocessing  # noqa: E402

OPERATIONS = {
    "RESIZE": {"RESIZE.ENABLE": True},  # OUTPUT_SHAPE set to 3/4 of the side below
    "ZOOM": {"ZOOM.ENABLE": True, "ZOOM.ZOOM_FACTOR": [0.75, 0.75]},
    "GAUSSIAN_BLUR": {"GAUSSIAN_BLUR.ENABLE": True},
    "MEDIAN_BLUR": {"MEDIAN_BLUR.ENABLE": True},
    "MATCH_HISTOGRAM": {"MATCH_HISTOGRAM.ENABLE": True},
    "CLAHE": {"CLAHE.ENABLE": True},
    "CANNY": {"CANNY.ENABLE": True},
}


def images(side: int, n: int) -> list[np.ndarray]:
    from skimage import data, transform

    cam = data.camera()
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        y, x = rng.integers(0, 512 - 256, size=2)
        crop = transform.resize(cam[y:y + 256, x:x + 256], (side, side), preserve_range=True, anti_aliasing=True)
        out.append(np.rint(crop).astype(np.uint8)[..., None])
    return out


def build(name: str, side: int, reference_dir: str) -> Preprocessing:
    cfg = get_cfg_defaults()
    cfg.DATA.PREPROCESS.TRAIN = True
    for key, value in OPERATIONS[name].items():
        section, leaf = key.split(".")
        cfg.DATA.PREPROCESS[section][leaf] = value
    cfg.DATA.PREPROCESS.RESIZE.OUTPUT_SHAPE = (side * 3 // 4, side * 3 // 4)
    cfg.DATA.PREPROCESS.MATCH_HISTOGRAM.REFERENCE_PATH = reference_dir
    return Preprocessing.from_cfg(cfg, 1)


def rate(fn, batch: list[np.ndarray], min_seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        for image in batch:
            fn(image)
        done += len(batch)
    return done / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timings")
    args = parser.parse_args(argv)
    import torch
    from PIL import Image
    from skimage.exposure import match_histograms

    torch.set_num_threads(1)
    seconds = 0.3 if args.quick else 1.5
    print(f"DATA.PREPROCESS throughput, images/s on one thread ({os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f})\n")
    print("| operation | 32x32 | 256x256 |\n|---|---:|---:|")
    with tempfile.TemporaryDirectory() as ref:
        for i, im in enumerate(images(256, 20)):  # 20 reference images of 256x256
            Image.fromarray(im[..., 0]).save(Path(ref) / f"ref{i}.png")
        results = {}
        for name in OPERATIONS:
            row = [rate(build(name, side, ref), images(side, 20), seconds) for side in (32, 256)]
            results[name] = row
            print(f"| {name} | {row[0]:,.0f} | {row[1]:,.0f} |")
        pooled = np.concatenate([np.asarray(Image.open(p)).ravel() for p in sorted(Path(ref).glob("*.png"))])
        pooled = pooled.reshape(-1, 1)
        row = [rate(lambda im: match_histograms(im[..., 0], pooled), images(side, 20), seconds) for side in (32, 256)]
        print(f"| MATCH_HISTOGRAM via skimage.exposure.match_histograms | {row[0]:,.0f} | {row[1]:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
