"""Load a file from ``scripts/`` as a module, for tests of the scripts that are not part of the package.

The scripts are run as ``python scripts/NAME.py`` and so are not importable; a test loads the file itself.
The module is registered in ``sys.modules`` before it runs because a dataclass defined in a script looks its
own module up while being created.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str) -> ModuleType:
    """``scripts/NAME.py`` as a fresh module named NAME."""
    path = SCRIPTS / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)  # no half-run module left behind under the script's name
        raise
    return module
