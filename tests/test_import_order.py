"""The zlib/import-order trap of paddle 2.6.2: our packages and entry points work whatever comes first."""

import subprocess
import sys

import pytest
from conftest import ROOT

ENTRY_POINTS = sorted(str(p.relative_to(ROOT)) for p in [*ROOT.glob("tools/*.py"), ROOT / "slim" / "nas" / "train.py"])


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("first", ["ppnas", "search_space", "latency", "ppnas.tasks.detection", "numpy", "cv2"])
def test_any_of_our_modules_first_then_the_zlib_users(first):
    # scipy and paddleslim are the imports that crash when paddle is a process's first import
    # (numpy or cv2 before paddle happen to avoid it too; ppnas then finds zlib working and goes on)
    result = _python(
        f"import {first}; import paddle; import ppnas.engine.loop; import scipy; import paddleslim; print('ok')"
    )
    assert result.returncode == 0, result.stderr[-1500:]
    assert result.stdout.strip().endswith("ok")


def test_paddle_first_gets_an_explanation_not_a_crash():
    result = _python("import paddle; import ppnas")
    assert result.returncode == 1  # an ImportError, not SIGSEGV (-11)
    assert "Put `import ppnas` (or `import zlib`) before `import paddle`" in result.stderr


@pytest.mark.parametrize("script", ENTRY_POINTS)
def test_entry_points_start(script):
    result = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-1500:]
    assert "usage" in result.stdout.lower()
    assert "Setuptools is replacing distutils" not in result.stderr  # paddle + paddleslim's `import pip`
