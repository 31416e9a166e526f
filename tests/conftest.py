"""Shared fixtures. Paddle runs on 2 CPU threads in tests, like CI."""

import zlib  # noqa: F401  # isort: skip  # must precede paddle (see ppnas/__init__.py)
import os
import pathlib

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("CPU_NUM", "1")

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def latency_855_path() -> pathlib.Path:
    path = SHARED / "data" / "latency_855.txt"
    if not path.exists():
        pytest.fail(f"{path} is missing: the real 855 table lives in ../shared/data beside the checkout")
    return path
