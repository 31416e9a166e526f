"""Paddle inference models -> ONNX (paddle2onnx) -> MNN (MNN's converter), many models in one child process.

The conversion runs in a child: paddle2onnx aborts the whole process (SIGABRT) on an operator it cannot
convert, which must not take the caller down before it can say which model and operator that was. One child
converts a whole list (an export folder holds hundreds of op models; a child's start costs seconds).

MNN's converter is called through its extension module `_tools`, not the `mnnconvert` command: the command's
Python wrapper (MNN.tools.mnnconvert, MNN 3.6.1) imports a logger that runs `pip install` when a package is
missing and sends usage logs over the network after each conversion.
"""

import importlib
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence

from ppnas.errors import ExportError

DEFAULT_OPSET = 11
ONNX_PACKAGES = ("paddle2onnx", "onnxruntime")
INSTALL_HINTS = {
    "onnx": "pip install 'ppnas[onnx]' (or: pip install paddle2onnx==1.3.1 onnxruntime==1.32.0)",
    "mnn": "pip install 'ppnas[onnx,mnn]' (or: pip install paddle2onnx==1.3.1 MNN==3.6.1)",
}
MARK = "@@ppnas"  # prefix of the child's progress lines (the converters print freely on stdout)
_CHILD = f"""
import zlib, json, os, sys
jobs, opset = json.load(sys.stdin), int(sys.argv[1])
for i, job in enumerate(jobs):
    print("{MARK} start", i, flush=True)
    import paddle2onnx
    paddle2onnx.export(job["model"], job["params"], job["onnx"], opset_version=opset, verbose=False)
    if job["mnn"]:
        import _tools
        _tools.mnnconvert(["mnnconvert", "-f", "ONNX", "--modelFile", job["onnx"], "--MNNModel", job["mnn"],
                           "--bizCode", "ppnas"])
        if not os.path.isfile(job["mnn"]):
            print("{MARK} failed", i, "MNN's converter wrote no model", flush=True)
            sys.exit(3)
    print("{MARK} done", i, flush=True)
"""


@dataclass
class Job:
    """Convert `model` (+ `params`, '' when it has none) to `onnx`, then to `mnn` when given."""

    model: str
    params: str
    onnx: str
    mnn: Optional[str] = None


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def missing_packages(target: str) -> List[str]:
    """The packages converting to `target` ('onnx' or 'mnn') and running it need but cannot be imported."""
    needed = ONNX_PACKAGES if target == "onnx" else ("paddle2onnx", "MNN")
    return [name for name in needed if not _importable(name)]


def check_available(target: str) -> None:
    """Fail before any work when a package the `target` format needs is not installed."""
    missing = missing_packages(target)
    if missing:
        raise ExportError(
            f"{target.upper()} export needs {' and '.join(missing)}, which is not installed: {INSTALL_HINTS[target]}"
        )


def paddle_files(model_dir: str, prefix: str = "model") -> Job:
    """A job reading `model_dir/<prefix>.pdmodel` (+ .pdiparams) and writing `<prefix>.onnx` beside it."""
    params = os.path.join(model_dir, f"{prefix}.pdiparams")
    return Job(
        model=os.path.join(model_dir, f"{prefix}.pdmodel"),
        params=params if os.path.exists(params) else "",
        onnx=os.path.join(model_dir, f"{prefix}.onnx"),
    )


def convert(jobs: Sequence[Job], opset: int = DEFAULT_OPSET, describe: Sequence[str] = ()) -> None:
    """Run every job in one child process; an ExportError names the model (and `describe[i]`) that failed."""
    if not jobs:
        return
    check_available("mnn" if any(job.mnn for job in jobs) else "onnx")
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(opset)],
        input=json.dumps([asdict(job) for job in jobs]),
        capture_output=True,
        text=True,
    )
    text = done.stdout + done.stderr
    started = re.findall(rf"^{MARK} start (\d+)", done.stdout, re.M)
    finished = re.findall(rf"^{MARK} done (\d+)", done.stdout, re.M)
    if done.returncode == 0 and len(finished) == len(jobs):
        return
    failed = int(started[-1]) if started else 0
    job = jobs[failed]
    what = f" ({describe[failed]})" if describe else ""
    ops = re.search(r"not supported yet, including ([^\n]*)", text)
    why = f"operators it cannot convert: {ops.group(1).strip().rstrip(',')}" if ops else _last_line(text)
    target = job.mnn if job.mnn and os.path.exists(job.onnx) else job.onnx
    raise ExportError(f"could not convert {job.model}{what} to {target} (opset {opset}): {why}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith(MARK)]
    return lines[-1] if lines else "no message"
