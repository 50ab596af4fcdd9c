"""Run the base benchmarks (training throughput, quick preset) and print their figures.

Each audit has its own benchmark scripts (`benchmarks/<area>_*.py`); their commands and results are
listed in `docs/BENCHMARKS.md`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

for script in ("train_throughput.py", "quick_preset.py"):
    print(f"== {script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True)
