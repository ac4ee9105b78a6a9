"""Run a module of this checkout with Python's own modules and the installed packages ahead of
anything in the checkout, so that a file a pull request adds at the root (a numpy.py, say) is
never imported in place of what it names:

    python -I scripts/isolated.py mnist_gate.verdict runs/this --main runs/main

-I keeps the current folder, this script's folder and the PYTHON* variables out of sys.path; the
checkout goes last, where only this project's own package is found.
"""

import runpy
import sys
from pathlib import Path

if len(sys.argv) < 2:
    sys.exit("usage: python -I scripts/isolated.py MODULE [ARGS...]")
sys.path.append(str(Path(__file__).resolve().parent.parent))
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
