#!/usr/bin/env python3
"""Write scikit-learn's bundled handwritten digits as a folder-per-class image dataset.

    python scripts/make_example_data.py data/digits

1797 real 8x8 scans of handwritten digits (shipped inside scikit-learn, no download), upscaled to
32x32 8-bit PNG, split in a stratified, seeded way into

    data/digits/train/0_zero/digit_0000.png ...   data/digits/test/9_nine/digit_1796.png

Class folders are named "<digit>_<word>" so that their natural order is the digits' order.

    python scripts/make_example_data.py data/digits3d --3d --depth 16

writes volumetric digits instead: each digit extruded along z into a (depth, size, size) uint8 tif
stack, every slice shifted by up to 2 pixels and scaled in intensity (0.7-1.0) at random (seeded), so
that the slices differ as in a real stack. Same train/test class tree.

The code is in biapy_cls/example_data.py (write_digits), which the notebooks use too.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", help="folder to create; train/ and test/ are written inside")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="fraction of each class for test (default 0.2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    parser.add_argument("--format", choices=["png", "tif", "npy", "bmp", "jpg"], default="png", help="file format")
    parser.add_argument("--copies", type=int, default=1,
                        help="write the training set this many times (for scaling tests)")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images of each class (0 = all)")
    parser.add_argument("--3d", dest="volumes", action="store_true",
                        help="write 3D volumes (tif stacks, z,y,x): each digit extruded along z with per-slice jitter")
    parser.add_argument("--depth", type=int, default=16, help="slices of each 3D volume (default 16)")
    args = parser.parse_args(argv)
    if args.volumes and args.format not in ("tif", "npy", "png"):
        parser.error("--3d writes tif (default) or npy volumes")
    # Imported after parsing, so that --help answers without the package installed.
    from biapy_cls.example_data import write_digits

    print(write_digits(args.out_dir, args.size, args.test_fraction, args.seed, args.format, args.copies, args.limit,
                       args.volumes, args.depth))
    return 0


if __name__ == "__main__":
    sys.exit(main())
