import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from underwater_detection.engine.runtime import configure_cpu_runtime


def test_configure_sets_threads_and_restores():
    before = torch.get_num_threads()
    try:
        info = configure_cpu_runtime(1, tune_allocator=False)
        assert info == {"threads": 1, "allocator_tuned": False}
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_invalid_threads_rejected():
    with pytest.raises(ValueError, match="threads"):
        configure_cpu_runtime(0)


def test_allocator_tuning_on_glibc_and_opt_out(tmp_path):
    """Run in a child process: mallopt changes the whole process, the test runner must not inherit it."""
    code = "from underwater_detection.engine.runtime import tune_glibc_allocator; print(tune_glibc_allocator())"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() in {"True", "False"}
    if sys.platform.startswith("linux") and "glibc" in (os.confstr("CS_GNU_LIBC_VERSION") or "").lower():
        assert out.stdout.strip() == "True"
    env["UWDET_NO_MALLOC_TUNING"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
