"""Processes for the distributed tests: tools/nas_server.py and real tools/train_nas.py clients on 127.0.0.1.

Candidates are BlazeFace models trained a few real iterations on a tiny generated WIDER-layout set
(64x64 images), so a candidate costs about half a second.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

import yaml

from ppnas.controller_server.protocol import FRAME, frame, unframe
from ppnas.demo.cityscapes import make_cityscapes_demo
from ppnas.demo.wider import make_wider_demo
from ppnas.history import History
from ppnas.samplers.connect import CLIENTS_DIR

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "configs" / "demo" / "blazeface_demo.yml"
SEG_DEMO_CONFIG = ROOT / "configs" / "demo" / "cityscape_demo.yaml"
PROCESS_TIMEOUT = 90  # no process of these tests lives longer
DETECTION_KEY = "['BlazeFaceNasSpace']"


def make_data(folder: pathlib.Path) -> pathlib.Path:
    data = folder / "demo_wider"
    if not data.exists():
        make_wider_demo(str(data), 8, 4, 64, 3, 0)
    return data


def write_config(folder: pathlib.Path, data: pathlib.Path, **keys: Any) -> pathlib.Path:
    """The demo detection config, shrunk: 64x64 input, 2 iterations, batch 4, no FLOPs floor."""
    cfg: Dict[str, Any] = {
        "_BASE_": str(DEMO_CONFIG),
        "input_size": 64,
        "max_iters": 2,
        "seed": 0,
        "server_ip": "127.0.0.1",
        "server_port": 0,
        "Constraint": {"min_constraint": 0},
        "TrainReader": {"batch_size": 4},
        "TrainDataset": {"dataset_dir": str(data)},
        "EvalDataset": {"dataset_dir": str(data)},
    }
    cfg.update(keys)
    path = folder / "search.yml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def write_seg_config(folder: pathlib.Path, port: int = 0, steps: int = 1) -> pathlib.Path:
    """The demo segmentation config on 8 generated 64x128 images, one epoch of 2 iterations."""
    data = folder / "demo_cityscapes"
    lists = make_cityscapes_demo(str(data), 8, 2, (64, 128))
    cfg = {
        "_base_": str(SEG_DEMO_CONFIG),
        "epochs": 1,
        "train_dataset": {"dataset_root": str(data), "train_path": lists["train"]},
        "val_dataset": {"dataset_root": str(data), "val_path": lists["val"]},
        "SLIM": {"NAS_SEARCH_STEPS": steps, "NAS_ADDRESS": "127.0.0.1", "NAS_PORT": port},
    }
    path = folder / "seg_search.yml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def child_env() -> Dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", CPU_NUM="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


class Server:
    """tools/nas_server.py in a subprocess; `port` is read from its first line."""

    def __init__(self, config: pathlib.Path, save_dir: pathlib.Path, *args: str, port: int = 0) -> None:
        self.log_path = save_dir.parent / f"{save_dir.name}-server-{time.time_ns()}.log"
        cmd = [sys.executable, str(ROOT / "tools" / "nas_server.py"), "-c", str(config), "--port", str(port)]
        cmd += ["--save_dir", str(save_dir), "--linger_seconds", "2", "--request_timeout", "2", *args]
        self.log = open(self.log_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, env=child_env(), text=True)
        self.port = self._read_port()
        self.save_dir = save_dir

    def _read_port(self) -> int:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not match:
            self.proc.kill()
            raise AssertionError(f"server did not start: {line!r}\n{self.log_path.read_text()}")
        return int(match.group(1))

    def wait(self, timeout: float = PROCESS_TIMEOUT) -> int:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        finally:
            self.kill()
        self.output = out
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def stderr(self) -> str:
        return self.log_path.read_text(encoding="utf-8")


def start_client(config: pathlib.Path, port: int, save_dir: pathlib.Path, *overrides: str) -> subprocess.Popen:
    """tools/train_nas.py as a client (is_server false) of the server on `port`."""
    cmd = [sys.executable, str(ROOT / "tools" / "train_nas.py"), "-c", str(config), "--quiet", "-o"]
    cmd += ["is_server=false", f"server_port={port}", f"save_dir={save_dir}", *overrides]
    log = open(save_dir.parent / f"{save_dir.name}-client.log", "w", encoding="utf-8")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env())


def client_name(proc: subprocess.Popen) -> str:
    return f"{socket.gethostname()}-{proc.pid}"  # what tools/train_nas.py calls a new client


def client_dir(save_dir: pathlib.Path, proc: subprocess.Popen) -> pathlib.Path:
    """Where a new client started with `save_dir` keeps its own records."""
    return save_dir / CLIENTS_DIR / client_name(proc)


def finish(proc: subprocess.Popen, timeout: float = PROCESS_TIMEOUT) -> int:
    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def exchange(port: int, payload: bytes, timeout: float = 5.0) -> str:
    """Send raw bytes as one request; the answer, unframed when the request was framed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    return unframe(data) if payload.startswith(FRAME) else data.decode("utf-8")


def request(port: int, message: str, timeout: float = 5.0) -> str:
    """A stock (bare) request."""
    return exchange(port, message.encode("utf-8"), timeout)


def ppnas_request(port: int, message: str, timeout: float = 5.0) -> str:
    """A ppnas (framed) request."""
    return exchange(port, frame(message), timeout)


def server_info(port: int) -> Dict[str, Any]:
    return json.loads(ppnas_request(port, f"{DETECTION_KEY}\tppnas_info"))


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def trained(save_dir: pathlib.Path) -> List[Dict[str, Any]]:
    return History.in_dir(str(save_dir)).trained()


def records(save_dir: pathlib.Path) -> List[Dict[str, Any]]:
    return History.in_dir(str(save_dir)).read()


def checkpoint(save_dir: pathlib.Path) -> Dict[str, Any]:
    return json.loads((save_dir / "sanas.checkpoints").read_text(encoding="utf-8"))


def rewards_of(items: List[Dict[str, Any]], client: Optional[str] = None) -> List[tuple]:
    """(tokens, reward, client) of trained records, sorted; optionally of one client only."""
    rows = [(tuple(r["tokens"]), r["reward"], r["client"]) for r in items if client in (None, r["client"])]
    return sorted(rows)
