"""Speed and memory at the sizes users have (issue 22): 224x224 RGB JPEG, 256x256 uint16 TIFF and
64x128x128 uint16 TIFF volumes, generated here from upscaled scikit-learn digits.

For each format: images/s of (i) decoding alone with the reader library (Pillow, tifffile), (ii) our
loader (LazyDataset -> DataLoader at 0, 1, 2 workers -> unit scale, augmentation, normalisation) and the
in-memory loader, (iii) the training step (forward, loss, backward, AdamW) of each model on that size;
the bytes of one batch as it leaves the loader (what a GPU copy moves); in-memory storage / raw pixel
bytes; and, in fresh processes, peak memory of lazy and in-memory epochs over 1x/4x/16x the data
(hard links of the same files, so that writing them costs nothing).

Every rate is given in wall time and in CPU time (this process plus its DataLoader workers, from
getrusage): on a loaded machine wall time measures the queue for the cores, CPU time the work.
`python bench/real_sizes.py --memory-case ...` is the child process of one memory case.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import torch  # noqa: E402
from scaling import peak_rss_bytes  # noqa: E402  (bench/ is on the path: run as a script or from run.py)

# name -> (ndim, spatial, channels, suffix, dtype, batch of the loader and of the training step)
FORMATS = {
    "224x224 RGB JPEG": ("2D", (224, 224), 3, ".jpg", np.uint8, 16),
    "256x256 uint16 TIFF": ("2D", (256, 256), 1, ".tif", np.uint16, 16),
    "64x128x128 uint16 TIFF": ("3D", (64, 128, 128), 1, ".tif", np.uint16, 2),
}
QUICK_SIZES = {"2D": (32, 32), "3D": (8, 16, 16)}  # --quick: same formats, tiny images
MODELS = ("simple_cnn", "efficientnet_b0", "vit", "resnet18")
AUGMENT = {"AUGMENTOR.ENABLE": True, "AUGMENTOR.VFLIP": True, "AUGMENTOR.HFLIP": True, "AUGMENTOR.RANDOM_ROT": True}


def cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (DataLoader workers once joined)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn, n: int) -> dict:
    """Run fn() once (it handles n images) and return images/s in wall and CPU time."""
    gc.collect()
    wall, cpu = time.perf_counter(), cpu_seconds()
    fn()
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return {"wall": n / max(wall, 1e-9), "cpu": n / max(cpu, 1e-9)}


# ---------------------------------------------------------------------------------------------- data


def digit_images(n: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images[:n].astype(np.float32) / 16.0, digits.target[:n]


def render(digit: np.ndarray, ndim: str, spatial: tuple[int, ...], channels: int, dtype, rng) -> np.ndarray:
    """One digit upscaled to `spatial` with texture noise: (y, x[, c]) or (z, y, x), in `dtype`'s range."""
    yx = spatial[-2:]
    img = torch.nn.functional.interpolate(torch.from_numpy(digit)[None, None], size=yx, mode="bilinear",
                                          align_corners=False)[0, 0].numpy()
    if ndim == "3D":  # the digit as a blob through the middle slices
        z = np.exp(-((np.arange(spatial[0]) - spatial[0] / 2) / (spatial[0] / 4)) ** 2)
        img = z[:, None, None] * img[None]
    if channels == 3:
        img = img[..., None] * np.array([1.0, 0.7, 0.4], dtype=np.float32)
    img = np.clip(0.8 * img + 0.1 + 0.05 * rng.standard_normal(img.shape, dtype=np.float32), 0, 1)
    return (img * np.iinfo(dtype).max).astype(dtype)


def write_set(folder: Path, fmt: str, n: int, quick: bool):
    """n images of one format in folder/<class>/; returns (SampleList, ImageSpec)."""
    import tifffile
    from PIL import Image

    from biapy_cls.data.dataset import ImageSpec
    from biapy_cls.data.discover import SampleList

    ndim, spatial, channels, suffix, dtype, _ = FORMATS[fmt]
    spatial = QUICK_SIZES[ndim] if quick else spatial
    rng = np.random.default_rng(0)
    digits, labels = digit_images(n)
    paths = []
    for i, (digit, label) in enumerate(zip(digits, labels)):
        path = folder / str(label) / f"img_{i:05d}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        img = render(digit, ndim, spatial, channels, dtype, rng)
        if suffix == ".jpg":
            Image.fromarray(img).save(path, quality=90)
        else:
            tifffile.imwrite(path, img)
        paths.append(path)
    return SampleList(paths, np.asarray(labels, dtype=np.int64), folder), ImageSpec(ndim, spatial, channels)


def linked_copies(samples, folder: Path, copies: int):
    """`copies` x the files of `samples` as hard links (symbolic links where hard links fail)."""
    from biapy_cls.data.discover import SampleList

    paths, labels = [], []
    for c in range(copies):
        for path, label in zip(samples.paths, samples.labels):
            link = folder / f"copy{c}" / path.name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                try:
                    os.link(path, link)
                except OSError:
                    link.symlink_to(path)
            paths.append(link)
            labels.append(label)
    return SampleList(paths, np.asarray(labels, dtype=np.int64), folder)


# ----------------------------------------------------------------------------------------- pipeline


def decode_all(paths: list[Path]) -> None:
    """(i) decoding alone, with the reader library and nothing of ours."""
    import tifffile
    from PIL import Image

    for path in paths:
        if path.suffix == ".jpg":
            with Image.open(path) as im:
                np.asarray(im)
        else:
            tifffile.imread(path)


def make_prepare_fn(augment: bool, ndim: str):
    from biapy_cls.config.defaults import get_cfg_defaults
    from biapy_cls.data.augment import Augmenter
    from biapy_cls.data.transforms import Normalizer, make_prepare

    cfg = get_cfg_defaults()
    cfg.merge_from_list(["PROBLEM.NDIM", ndim])
    if augment:
        cfg.merge_from_list([v for kv in AUGMENT.items() for v in (kv[0], str(kv[1]))])
    return make_prepare(Normalizer.from_cfg(cfg), Augmenter.from_cfg(cfg) if augment else None)


def worker_cpu_seconds(loader) -> float:
    """CPU seconds so far of a loader's live worker processes (from /proc; 0 where there is none)."""
    total = 0.0
    for worker in getattr(getattr(loader, "_iterator", None), "_workers", []):
        try:
            fields = Path(f"/proc/{worker.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            pass
    return total


def loader_rate(dataset, batch: int, workers: int, prepare) -> dict:
    """Images/s (wall, CPU of this process + its workers) of the second epoch through build_loader and
    prepare (the first starts the persistent workers), and the bytes of the largest batch the loader gave."""
    from biapy_cls.data.dataset import build_loader

    loader = build_loader(dataset, batch, True, 0, workers, False, train=True)
    largest = 0
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        if epoch == 1:
            gc.collect()
            wall, cpu = time.perf_counter(), cpu_seconds() + worker_cpu_seconds(loader)
        for images, _, _ in loader:
            largest = max(largest, images.numel() * images.element_size())
            prepare(images, dataset.value_range, True)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() + worker_cpu_seconds(loader) - cpu
    n = len(dataset)
    del loader
    return {"wall": n / max(wall, 1e-9), "cpu": n / max(cpu, 1e-9), "bytes": largest}


def run_epoch(dataset, batch: int, workers: int, prepare) -> None:
    from biapy_cls.data.dataset import build_loader

    loader = build_loader(dataset, batch, True, 0, workers, False, train=True)
    loader.sampler.set_epoch(0)
    for images, _, _ in loader:
        prepare(images, dataset.value_range, True)


def pipeline(samples, spec, batch: int, workers: tuple[int, ...]) -> dict:
    """Images/s of decoding alone, our lazy loader at each worker count and our in-memory loader; the
    in-memory storage ratio; bytes per batch as the loader gives it."""
    from biapy_cls.data.dataset import InMemoryDataset, LazyDataset

    prepare = make_prepare_fn(True, spec.ndim)
    n = len(samples)
    lazy = LazyDataset(samples, spec)
    out: dict = {"images": n, "lazy": {}}
    decode_before = timed(lambda: decode_all(samples.paths), n)
    for w in workers:
        out["lazy"][w] = loader_rate(lazy, batch, w, prepare)
        out["lazy_batch_bytes"] = out["lazy"][w]["bytes"]
    decode_after = timed(lambda: decode_all(samples.paths), n)
    # Decoding is measured before and after the loaders; the mean brackets any drift in the machine's load.
    out["decode"] = {k: (decode_before[k] + decode_after[k]) / 2 for k in ("wall", "cpu")}
    box = {}
    out["memory_load"] = timed(lambda: box.setdefault("ds", InMemoryDataset(samples, spec, "Loading", threads=1)), n)
    memory = box["ds"]
    out["memory"] = loader_rate(memory, batch, 0, prepare)
    out["memory_batch_bytes"] = out["memory"]["bytes"]
    out["float_batch_bytes"] = batch * int(np.prod(spec.shape)) * 4
    out["stored_bytes"] = memory.nbytes
    itemsize = np.dtype(memory.images.dtype).itemsize
    out["raw_bytes"] = n * int(np.prod(spec.shape)) * itemsize
    return out


# ------------------------------------------------------------------------------------------- models


def build(arch: str, spec, n_classes: int = 10):
    """Our model, or torchvision's resnet18 (through MODEL.SOURCE torchvision when this branch has it)."""
    from biapy_cls.config.defaults import get_cfg_defaults
    from biapy_cls.models import ModelSpec, available_architectures, build_model

    cfg = get_cfg_defaults()
    if arch == "resnet18":
        if spec.ndim == "3D":
            return None, "2D only (torchvision)"
        if "source" in ModelSpec.__dataclass_fields__:  # MODEL.SOURCE torchvision, random weights
            spec = ModelSpec("resnet18", spec.ndim, spec.channels, n_classes, spec.spatial, source="torchvision")
            return build_model(spec, cfg.MODEL), ""
        import torchvision

        model = torchvision.models.resnet18(num_classes=n_classes)
        if spec.channels != 3:
            model.conv1 = torch.nn.Conv2d(spec.channels, 64, 7, 2, 3, bias=False)
        return model, "torchvision.models.resnet18 directly (MODEL.SOURCE torchvision not on this branch)"
    if arch not in available_architectures():
        return None, "not registered on this branch"
    return build_model(ModelSpec(arch, spec.ndim, spec.channels, n_classes, spec.spatial), cfg.MODEL), ""


def train_step_rate(arch: str, spec, batch: int, steps: int) -> dict:
    """(iii) images/s of forward + loss + backward + AdamW on random prepared batches."""
    torch.manual_seed(0)
    model, note = build(arch, spec)
    if model is None:
        return {"note": note}
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, y = torch.randn(batch, *spec.shape), torch.randint(0, 10, (batch,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    step()  # first step: allocations and lazy initialisation
    rate = timed(lambda: [step() for _ in range(steps)], steps * batch)
    return {**rate, "note": note}


# ------------------------------------------------------------------------------------------- memory


def memory_child(folder: str, fmt: str, copies: int, in_memory: bool, quick: bool) -> dict:
    """One memory case in this fresh process: peak growth over building the dataset and one epoch."""
    from biapy_cls.data.dataset import build_dataset
    from biapy_cls.data.discover import SampleList

    ndim, spatial, channels, _, _, batch = FORMATS[fmt]
    spec_spatial = QUICK_SIZES[ndim] if quick else spatial
    from biapy_cls.data.dataset import ImageSpec

    spec = ImageSpec(ndim, spec_spatial, channels)
    paths = sorted(Path(folder).rglob("img_*"))
    base = SampleList(paths, np.zeros(len(paths), dtype=np.int64), Path(folder))
    samples = linked_copies(base, Path(folder).parent / f"{Path(folder).name}_x{copies}", copies)
    prepare = make_prepare_fn(True, ndim)
    prepare(torch.zeros(batch, *spec.shape, dtype=torch.uint8), 255.0, True)  # warm-up of torch's allocations
    before = peak_rss_bytes()
    dataset = build_dataset(samples, spec, in_memory, "Loading", threads=1)
    run_epoch(dataset, batch, 0, prepare)
    return {"images": len(samples), "growth": peak_rss_bytes() - before, "peak": peak_rss_bytes(),
            "stored": dataset.nbytes if in_memory else 0}


def memory_cases(folder: Path, fmt: str, copies: tuple[int, ...], quick: bool) -> list[dict]:
    rows = []
    for c in copies:
        for in_memory in (False, True):
            cmd = [sys.executable, __file__, "--memory-case", str(folder), "--format", fmt, "--copies", str(c),
                   "--in-memory", str(int(in_memory))] + (["--quick"] if quick else [])
            done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            if done.returncode != 0:
                raise RuntimeError(f"memory case {cmd} failed:\n{done.stderr[-3000:]}")
            rows.append({"copies": c, "in_memory": in_memory, **json.loads(done.stdout.strip().splitlines()[-1])})
    return rows


# ---------------------------------------------------------------------------------------------- run


def run(work: Path, quick: bool, say=print) -> dict:
    """Every measurement of this module; `work` holds the generated files."""
    n = {"2D": 16, "3D": 4} if quick else {"2D": 64, "3D": 8}
    workers = (0, 1, 2)
    result: dict = {"quick": quick, "formats": {}}
    for fmt, (ndim, _, _, _, _, batch) in FORMATS.items():
        say(f"realistic sizes: {fmt}")
        folder = work / fmt.replace(" ", "_")
        samples, spec = write_set(folder, fmt, n[ndim], quick)
        row = {"spatial": spec.spatial, "pipeline": pipeline(samples, spec, batch, workers), "models": {}}
        for arch in MODELS[:1] if quick else MODELS:
            row["models"][arch] = train_step_rate(arch, spec, batch, 1 if quick or ndim == "3D" else 2)
        if ndim == "3D" or (fmt.startswith("256") and not quick):
            row["memory"] = memory_cases(folder, fmt, (1, 4) if quick else (1, 4, 16), quick)
        result["formats"][fmt] = row
    return result


def _rate(r: dict) -> str:
    return f"{r['wall']:,.1f} / {r['cpu']:,.1f}"


def section(result: dict) -> list[str]:
    mib = 2**20
    lines = ["## 6. Realistic sizes (issue 22)", "",
             "Upscaled scikit-learn digits with texture noise, written by `bench/real_sizes.py` as "
             + ", ".join(FORMATS) + (" (--quick: the same formats at 32x32 and 8x16x16)" if result["quick"] else "")
             + ". Every rate is **images/s in wall time / in CPU time** (this process and its DataLoader "
             "workers); on a loaded machine the wall figure is the queue for the cores, the CPU figure the work. "
             "Loader: `LazyDataset` -> `build_loader` (batch 16 in 2D, 2 in 3D; patch = file size, so no "
             "resize) -> unit scale, augmentation (" + ", ".join(k.split(".")[1] for k in AUGMENT if k[-6:] != "ENABLE")
             + ") and the default per-image normalisation. '/ decode' = the loader's rate over decoding "
             "alone (Pillow / tifffile, one process), in CPU time (wall in brackets).", "",
             "| format | images | decode alone | lazy 0 workers | lazy 1 worker | lazy 2 workers | "
             "2 workers / decode | in memory (from RAM) | in-memory loading |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for fmt, row in result["formats"].items():
        p = row["pipeline"]
        two = p["lazy"][2]
        lines.append(f"| {fmt} | {p['images']} | {_rate(p['decode'])} | {_rate(p['lazy'][0])} | "
                     f"{_rate(p['lazy'][1])} | {_rate(two)} | {two['cpu'] / p['decode']['cpu']:.2f} "
                     f"({two['wall'] / p['decode']['wall']:.2f}) | {_rate(p['memory'])} | "
                     f"{_rate(p['memory_load'])} |")
    lines += ["", "Training step (forward, cross-entropy, backward, AdamW; random prepared batches of the loader's "
              "batch size, one thread), images/s wall / CPU, and the GPU view: bytes of one batch as the loader "
              "hands it over (the host-to-device copy) against the same batch in float32:", "",
              "| format | " + " | ".join(MODELS) + " | batch bytes lazy | batch bytes in memory | float32 batch |",
              "|---|" + "---:|" * (len(MODELS) + 3)]
    for fmt, row in result["formats"].items():
        cells = []
        for arch in MODELS:
            r = row["models"].get(arch)
            cells.append("-" if r is None else (_rate(r) if "wall" in r else f"- ({r['note']})"))
        p = row["pipeline"]
        lines.append(f"| {fmt} | " + " | ".join(cells) + f" | {p['lazy_batch_bytes'] / mib:.2f} MiB | "
                     f"{p['memory_batch_bytes'] / mib:.2f} MiB | {p['float_batch_bytes'] / mib:.2f} MiB |")
    notes = {r["note"] for row in result["formats"].values() for r in row["models"].values() if r.get("note")}
    lines += [""] + [f"- {note}" for note in sorted(notes)]
    lines += ["", "Memory, one fresh process per case (0 workers, so all memory is in the process), 1x/4x/16x the "
              "files (hard links): growth = peak resident memory after loading and one epoch - peak before "
              "(after PyTorch's warm-up):", "",
              "| format | copies | images | IN_MEMORY | stored MiB | stored / raw pixels | peak growth MiB |",
              "|---|---:|---:|---|---:|---:|---:|"]
    for fmt, row in result["formats"].items():
        p = row["pipeline"]
        for m in row.get("memory", []):
            raw = p["raw_bytes"] / p["images"] * m["images"]
            ratio = f"{m['stored'] / raw:.3f}" if m["in_memory"] else "-"
            lines.append(f"| {fmt} | {m['copies']} | {m['images']} | {m['in_memory']} | {m['stored'] / mib:,.1f} | "
                         f"{ratio} | {m['growth'] / mib:,.1f} |")
    return lines


def targets(result: dict) -> list[str]:
    """Rows for the Targets table of bench/run.py."""
    rows = []
    worst = min(((row["pipeline"]["lazy"][2]["cpu"] / row["pipeline"]["decode"]["cpu"], fmt)
                 for fmt, row in result["formats"].items()))
    rows.append(f"| lazy loader with 2 workers >= 0.8x decoding alone (CPU time), every format | lowest "
                f"{worst[0]:.2f} ({worst[1]}) | {'yes' if worst[0] >= 0.8 else '**no**'} (see Profiling) |")
    ratio = max(row["pipeline"]["stored_bytes"] / row["pipeline"]["raw_bytes"] for row in result["formats"].values())
    rows.append(f"| in-memory storage <= 1.05x raw pixel bytes (RGB, uint16, 3D) | {ratio:.3f}x | "
                f"{'yes' if ratio <= 1.05 else '**no**'} |")
    for fmt, row in result["formats"].items():
        lazy = [m for m in row.get("memory", []) if not m["in_memory"]]
        if len(lazy) > 1 and not fmt.startswith("224"):
            growth = [m["growth"] / 2**20 for m in lazy]
            # Independent of the size = no growth from the smallest to the largest set; the cases scatter
            # by tens of MiB (the allocator's reuse of the 3D warp's temporaries), in either direction.
            flat = growth[-1] - growth[0] < max(16.0, 0.25 * growth[0])
            rows.append(f"| lazy peak memory independent of dataset size ({fmt}) | growth "
                        + " / ".join(f"{g:.1f}" for g in growth) + f" MiB for {lazy[0]['images']}-{lazy[-1]['images']}"
                        f" images | {'yes' if flat else '**no**'} |")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory-case", help="folder of one format's files (child process of memory_cases)")
    parser.add_argument("--format", choices=list(FORMATS))
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--in-memory", type=int, choices=(0, 1), default=0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.memory_case:
        print(json.dumps(memory_child(args.memory_case, args.format, args.copies, bool(args.in_memory), args.quick)))
    else:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="bench_real_") as tmp:
            print("\n".join(section(run(Path(tmp), quick=args.quick))))
