"""Distributed search on this machine: candidates per minute with 1 and 2 clients, server round-trip times.

python bench/distributed_throughput.py [--steps 12] [--max_iters 10] [--seconds 8] [--think 0.5]

Throughput: tools/nas_server.py and 1 or 2 real tools/train_nas.py client processes (1 thread each) on
the demo BlazeFace search shrunk to a cheap evaluation (64x64 generated WIDER-layout images, `max_iters`
iterations, batch 4, eval on 4 images). Candidates per minute are counted on the server's history between
its first and its last reward, so process start-up is left out. Baseline: the 1-client run.
Round trip: N client processes (1, 8, 32) each loop next_tokens -> `--think` seconds (the candidate's
training) -> reward -> info through RemoteController against tools/nas_server.py (every state change
checkpointed with fsync); each call is timed from connect to answer. Also with no think time: saturation.
Baseline measured in the same run: PaddleSlim 2.6's ControllerServer (serial accept loop, no checkpoint)
with the same requests in its own protocol.
Prints one JSON object and writes bench/results/distributed_throughput.json.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import argparse
import multiprocessing
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

ROOT = pathlib.Path(__file__).resolve().parents[1]
KEY = "['BlazeFaceNasSpace']"
STOCK_SERVER = """
import zlib, sys, time
import search_space
from paddleslim.common import ControllerServer, SAController
from ppnas.spaces import build_space
space = build_space("BlazeFaceNasSpace", kernel_choices=[3])
table = space.range_table()
controller = SAController((len(table) * [0], table), 0.85, None, max_try_times=50000, init_tokens=space.init_tokens())
server = ControllerServer(controller, ("127.0.0.1", 0), max_client_num=100, search_steps=None, key=sys.argv[1])
server.start()
print("listening on 127.0.0.1:%d" % server.port(), flush=True)
time.sleep(float(sys.argv[2]))
"""


def _sys_path() -> None:
    for folder in (str(ROOT), str(ROOT / "tests")):
        if folder not in sys.path:
            sys.path.insert(0, folder)


# --- round trips -----------------------------------------------------------------------------------
def _stock_exchange(port: int, message: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(message.encode())
        return sock.recv(65536).decode()


def _timed(samples: Dict[str, List[float]], name: str, call: Any) -> Any:
    start = time.perf_counter()
    try:
        result = call()
    except Exception as err:  # a server that fell over: count it, keep measuring the others
        samples.setdefault("errors", []).append(repr(err)[:200])
        return None
    samples[name].append((time.perf_counter() - start) * 1000)
    return result


def _rtt_worker(flavour: str, port: int, index: int, ready: Any, seconds: float, think: float, queue: Any) -> None:
    """One client: next_tokens -> (`think` s of "training") -> reward -> info, for `seconds`, every call timed."""
    from ppnas.history import CandidateRecord
    from ppnas.samplers.remote import RemoteController

    samples: Dict[str, List[float]] = {"next": [], "reward": [], "info": []}
    name = f"bench-{index}"
    remote = RemoteController(("127.0.0.1", port), KEY, name, retry_seconds=0)
    ready.wait()
    end = time.time() + seconds
    step = 0
    while time.time() < end:
        step += 1
        if flavour == "ppnas":
            tokens = _timed(samples, "next", remote.next_tokens)
            time.sleep(think)
            if tokens is not None:
                done = CandidateRecord(tokens, "trained", step=step, reward=0.5, client=name)
                _timed(samples, "reward", lambda r=done: remote.recorded(r))
            _timed(samples, "info", remote.info)
        else:
            text = _timed(samples, "next", lambda: _stock_exchange(port, "next_tokens"))
            time.sleep(think)
            reward = f"{KEY}\t{text}\t0.5\t{step}\t{name}"
            if text:
                _timed(samples, "reward", lambda m=reward: _stock_exchange(port, m))
            _timed(samples, "info", lambda: _stock_exchange(port, "current_info"))
    remote.close()
    queue.put(samples)


def _percentiles(values: List[float]) -> Dict[str, Any]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    return {
        "count": len(values),
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
    }


def _start(cmd: List[str], log: pathlib.Path) -> Any:
    from distributed_helpers import child_env

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True, env=child_env())
    line = proc.stdout.readline()
    if "listening on 127.0.0.1:" not in line:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}, see {log}")
    return proc, int(line.split("listening on 127.0.0.1:")[1].split()[0])


def round_trips(
    flavour: str, clients: int, think: float, seconds: float, work: pathlib.Path, config: pathlib.Path
) -> Dict:
    if flavour == "ppnas":
        cmd = [sys.executable, str(ROOT / "tools" / "nas_server.py"), "-c", str(config), "--port", "0"]
        cmd += ["--save_dir", str(work / f"rtt-{clients}-{think}"), "-o", "search_steps=100000000"]
        cmd += ["--beat_timeout", "600"]
    else:
        cmd = [sys.executable, "-c", STOCK_SERVER, KEY, str(seconds + 60)]
    proc, port = _start(cmd, work / f"{flavour}-rtt-{clients}-{think}.log")
    context = multiprocessing.get_context("fork")  # the workers import no paddle: forking is cheap and safe
    queue = context.Queue()
    ready = context.Barrier(clients)  # all start together
    workers = [
        context.Process(target=_rtt_worker, args=(flavour, port, i, ready, seconds, think, queue))
        for i in range(clients)
    ]
    for worker in workers:
        worker.start()
    merged: Dict[str, List] = {"next": [], "reward": [], "info": [], "errors": []}
    for _ in workers:
        for name, values in queue.get(timeout=seconds + 120).items():
            merged[name] += values
    for worker in workers:
        worker.join(timeout=30)
    alive = proc.poll() is None
    proc.kill()
    proc.wait()
    errors = [
        line for line in (work / f"{flavour}-rtt-{clients}-{think}.log").read_text().splitlines() if "ERROR" in line
    ]
    every = merged["next"] + merged["reward"] + merged["info"]
    return {
        "clients": clients,
        "think_seconds": think,
        "all": _percentiles(every),
        **{name: _percentiles(merged[name]) for name in ("next", "reward", "info")},
        "requests_per_s": round(len(every) / seconds, 1),
        "errors": len(merged["errors"]),
        "first_error": merged["errors"][0] if merged["errors"] else None,
        "server_process_alive_after": alive,
        "server_logged_error": errors[-1][-300:] if errors else None,
    }


# --- candidates per minute -------------------------------------------------------------------------
def candidates_per_minute(clients: int, steps: int, max_iters: int, work: pathlib.Path, data: pathlib.Path) -> Dict:
    from distributed_helpers import Server, finish, start_client, trained, write_config

    folder = work / f"throughput-{clients}"
    folder.mkdir()
    config = write_config(folder, data, search_steps=steps, max_iters=max_iters)
    load_before = os.getloadavg()[0]
    server = Server(config, folder / "server")
    try:
        procs = [start_client(config, server.port, folder / f"client{i}") for i in range(clients)]
        codes = [finish(p, timeout=1200) for p in procs]
        server.wait(timeout=120)
    finally:
        server.kill()
    times = sorted(r["time"] for r in trained(folder / "server"))
    span = times[-1] - times[0]
    return {
        "clients": clients,
        "candidates": len(times),
        "seconds_first_to_last_reward": round(span, 2),
        "candidates_per_minute": round((len(times) - 1) / span * 60, 2),
        "client_exit_codes": codes,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12, help="candidates per throughput run")
    parser.add_argument("--max_iters", type=int, default=10, help="training iterations per candidate")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each round-trip measurement")
    parser.add_argument("--think", type=float, default=0.5, help="a round-trip client's candidate time (s)")
    args = parser.parse_args()
    _sys_path()
    from distributed_helpers import make_data, write_config

    with tempfile.TemporaryDirectory(prefix="ppnas-bench-") as tmp:
        work = pathlib.Path(tmp)
        data = make_data(work)
        config = write_config(work, data)
        rtt = {
            f"{flavour}_think_{think}s": [
                round_trips(flavour, n, think, args.seconds, work, config) for n in (1, 8, 32)
            ]
            for flavour in ("ppnas", "paddleslim")
            for think in (args.think, 0.0)
        }
        one, two = (candidates_per_minute(n, args.steps, args.max_iters, work, data) for n in (1, 2))
    from common import machine, save_result  # imports paddle: only after the forked round-trip workers

    ours_32 = rtt[f"ppnas_think_{args.think}s"][-1]["all"]
    result = {
        "benchmark": "distributed_throughput",
        "machine": machine(),
        "note": "2 CPU cores shared with other jobs while this ran (see load averages); each client 1 thread",
        "throughput": {"one_client": one, "two_clients": two, "baseline": "one_client"},
        "speedup_2_clients": round(two["candidates_per_minute"] / one["candidates_per_minute"], 3),
        "round_trip": rtt,
        "rtt_ms_32_clients": ours_32["p50_ms"],
        "rtt_ms_32_clients_p95": ours_32["p95_ms"],
        "rtt_definition": f"median ms per request, 32 clients each spending {args.think} s per candidate; "
        "think 0.0 = clients hammering the server back to back (saturation)",
        "rtt_baseline": "PaddleSlim 2.6 ControllerServer, same requests, same run",
        "command": "python bench/distributed_throughput.py " + " ".join(sys.argv[1:]),
    }
    save_result("distributed_throughput", result)


if __name__ == "__main__":
    main()
