"""A test-only run's start-up: what it imports before its first image is torch and little else (issue 22).

The time itself is measured by bench/run.py (docs/benchmarks.md, section 4): a test-only run reads its
first image within 1 s of CPU of `python -c "import torch"`. This test keeps the heavy imports that
measurement found off that path: torchvision (which imports torch._dynamo: +2.5 s of CPU over torch),
scikit-learn and scipy, pandas, matplotlib, timm, monai. They are imported where they are used.
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torchvision", "torch._dynamo", "sklearn", "scipy", "pandas", "matplotlib", "timm", "monai")


def test_the_modules_a_run_loads_before_its_first_image_import_nothing_heavy():
    # Every module the command line reaches before the test images are read: the CLI and API, the checked
    # configuration, the data plan and dataset, the model registry and the workflow itself.
    code = ("import sys\nimport biapy_cls.cli, biapy_cls.api, biapy_cls.configure, biapy_cls.workflow\n"
            "import biapy_cls.data.dataset, biapy_cls.data.plan, biapy_cls.models\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m in {HEAVY!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout
