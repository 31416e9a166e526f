"""The controller server on this machine: request round trips against PaddleSlim's server, and how the
candidates per minute scale from 1 to 2 clients. One command, about 10 minutes:

python bench/distributed_throughput.py [--seconds 8] [--think 0.5] [--cpu 0.5] [--candidates 24]

Round trip: N client processes (1, 8, 32) each loop next_tokens -> `--think` seconds (the candidate's
training, asleep) -> reward -> info for `--seconds`, every call timed from connect to answer, against
tools/nas_server.py (ppnas's RemoteController; every change checkpointed before it is answered, the history
line fsynced first) and, as the baseline in the same run, PaddleSlim 2.6's own ControllerServer (serial
accept loop, nothing on disk) with the same requests in its own protocol. The headline pair (32 clients,
`--think`) is repeated, ppnas then PaddleSlim, until the ratio of their medians is stable (the last 3 within
20% of each other) or `--max_repeats`. Also with no think time (saturation), once.

Throughput with the CPU time per candidate fixed: each client spends exactly `--cpu` s of its own thread's
CPU time per candidate (a busy loop on time.thread_time, so the load of other jobs makes it slower but not
more expensive), through tools/nas_server.py and RemoteController, `--candidates` candidates per client;
candidates per minute = all candidates / the wall time from the first draw to the last reward. Pairs of
runs (1 client, then 2) are repeated until their speedups are stable (the last 3 within 10%) or
`--max_repeats`; speedup_2_clients is the median. It measures the server's share only when two cores are
free for the clients: the load average before and after every run is recorded.

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
from typing import Any, Callable, Dict, List, Optional, Tuple

ROOT = pathlib.Path(__file__).resolve().parents[1]
KEY = "['BlazeFaceNasSpace']"
FLAVOURS = ("ppnas", "paddleslim")
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
RTT_STABLE = 0.2  # the last 3 ratios of medians within this share of their median
SPEEDUP_STABLE = 0.1


def _sys_path() -> None:
    for folder in (str(ROOT), str(ROOT / "tests")):
        if folder not in sys.path:
            sys.path.insert(0, folder)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _stable(values: List[float], spread: float) -> bool:
    last = values[-3:]
    return len(last) == 3 and (max(last) - min(last)) <= spread * statistics.median(last)


# --- the clients -----------------------------------------------------------------------------------
def _stock_exchange(port: int, message: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(message.encode())
        return sock.recv(65536).decode()


def _timed(samples: Dict[str, List[float]], name: str, call: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    try:
        result = call()
    except Exception as err:  # a server that fell over: count it, keep measuring the others
        samples.setdefault("errors", []).append(repr(err)[:200])
        return None
    samples[name].append((time.perf_counter() - start) * 1000)
    return result


def _burn(cpu_seconds: float) -> None:
    """Spend `cpu_seconds` of this thread's CPU time, however long the machine's other jobs make it take."""
    end = time.thread_time() + cpu_seconds
    while time.thread_time() < end:
        pass


def _client(flavour: str, port: int, index: int, ready: Any, job: Dict[str, float], queue: Any) -> None:
    """One client: next_tokens -> think (sleep) or burn (CPU) -> reward -> info, every call timed; until
    job["seconds"] have passed or job["candidates"] are done."""
    from ppnas.history import CandidateRecord
    from ppnas.samplers.remote import RemoteController

    samples: Dict[str, List[float]] = {"next": [], "reward": [], "info": []}
    name = f"bench-{index}"
    remote = RemoteController(("127.0.0.1", port), KEY, name, retry_seconds=0)
    ready.wait()
    start = time.time()
    end = start + job.get("seconds", float("inf"))
    step = 0
    while time.time() < end and step < job.get("candidates", float("inf")):
        step += 1
        if flavour == "ppnas":
            tokens = _timed(samples, "next", remote.next_tokens)
        else:
            tokens = _timed(samples, "next", lambda: _stock_exchange(port, "next_tokens"))
        if "cpu" in job:
            _burn(job["cpu"])
        else:
            time.sleep(job["think"])
        if tokens is not None and flavour == "ppnas":
            done = CandidateRecord(tokens, "trained", step=step, reward=0.5, client=name)
            _timed(samples, "reward", lambda r=done: remote.recorded(r))
        elif tokens:
            _timed(samples, "reward", lambda m=f"{KEY}\t{tokens}\t0.5\t{step}\t{name}": _stock_exchange(port, m))
        if flavour == "ppnas":
            _timed(samples, "info", remote.info)
        else:
            _timed(samples, "info", lambda: _stock_exchange(port, "current_info"))
    remote.close()
    queue.put({**samples, "span": [start, time.time()], "candidates": step})


# --- the servers -----------------------------------------------------------------------------------
def _start(flavour: str, work: pathlib.Path, config: pathlib.Path, name: str, lifetime: float) -> Tuple[Any, int]:
    from distributed_helpers import child_env

    if flavour == "ppnas":
        cmd = [sys.executable, str(ROOT / "tools" / "nas_server.py"), "-c", str(config), "--port", "0"]
        cmd += ["--save_dir", str(work / name), "-o", "search_steps=100000000", "--beat_timeout", "600"]
    else:
        cmd = [sys.executable, "-c", STOCK_SERVER, KEY, str(lifetime)]
    log = open(work / f"{name}.log", "w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=child_env())
    line = proc.stdout.readline()
    if "listening on 127.0.0.1:" not in line:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}, see {work / name}.log")
    return proc, int(line.split("listening on 127.0.0.1:")[1].split()[0])


def _run_clients(
    flavour: str, clients: int, job: Dict[str, float], work: pathlib.Path, config: pathlib.Path, name: str
) -> Dict[str, Any]:
    """Start a server, run `clients` client processes together, stop the server; merged samples and loads."""
    load_before = _load()
    proc, port = _start(flavour, work, config, name, lifetime=job.get("seconds", 0) + 600)
    context = multiprocessing.get_context("fork")  # the clients import no paddle: forking is cheap and safe
    queue = context.Queue()
    ready = context.Barrier(clients)  # all start together
    workers = [context.Process(target=_client, args=(flavour, port, i, ready, job, queue)) for i in range(clients)]
    for worker in workers:
        worker.start()
    merged: Dict[str, Any] = {"next": [], "reward": [], "info": [], "errors": [], "spans": [], "candidates": 0}
    for _ in workers:
        result = queue.get(timeout=job.get("seconds", 600) + 120)
        for key in ("next", "reward", "info", "errors"):
            merged[key] += result.get(key, [])
        merged["spans"].append(result["span"])
        merged["candidates"] += result["candidates"]
    for worker in workers:
        worker.join(timeout=30)
    merged["alive"] = proc.poll() is None
    proc.kill()
    proc.wait()
    log = (work / f"{name}.log").read_text()
    merged["server_errors"] = [line for line in log.splitlines() if "ERROR" in line]
    merged["load_average_before"], merged["load_average_after"] = load_before, _load()
    return merged


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


def round_trips(
    flavour: str, clients: int, think: float, seconds: float, work: pathlib.Path, config: pathlib.Path
) -> Dict:
    name = f"{flavour}-rtt-{clients}-{think}-{time.time_ns()}"
    run = _run_clients(flavour, clients, {"seconds": seconds, "think": think}, work, config, name)
    every = run["next"] + run["reward"] + run["info"]
    return {
        "clients": clients,
        "think_seconds": think,
        "all": _percentiles(every),
        **{kind: _percentiles(run[kind]) for kind in ("next", "reward", "info")},
        "requests_per_s": round(len(every) / seconds, 1),
        "errors": len(run["errors"]),
        "first_error": run["errors"][0] if run["errors"] else None,
        "server_process_alive_after": run["alive"],
        "server_logged_error": run["server_errors"][-1][-300:] if run["server_errors"] else None,
        "load_average_before": run["load_average_before"],
        "load_average_after": run["load_average_after"],
    }


def headline_round_trips(args: argparse.Namespace, work: pathlib.Path, config: pathlib.Path) -> Dict[str, Any]:
    """32 clients at `--think`, ppnas then PaddleSlim, repeated until the ratio of the medians is stable."""
    pairs: List[Dict[str, Dict]] = []
    ratios: List[float] = []
    while len(pairs) < args.max_repeats and not _stable(ratios, RTT_STABLE):
        pair = {flavour: round_trips(flavour, 32, args.think, args.seconds, work, config) for flavour in FLAVOURS}
        pairs.append(pair)
        ratios.append(pair["ppnas"]["all"]["p50_ms"] / pair["paddleslim"]["all"]["p50_ms"])
    return {
        "pairs": pairs,
        "ratios": [round(r, 3) for r in ratios],
        "stable": _stable(ratios, RTT_STABLE),
        "p50_ms": {f: round(statistics.median(p[f]["all"]["p50_ms"] for p in pairs), 3) for f in FLAVOURS},
        "p95_ms": {f: round(statistics.median(p[f]["all"]["p95_ms"] for p in pairs), 3) for f in FLAVOURS},
    }


# --- candidates per minute -------------------------------------------------------------------------
def candidates_per_minute(clients: int, args: argparse.Namespace, work: pathlib.Path, config: pathlib.Path) -> Dict:
    job = {"cpu": args.cpu, "candidates": args.candidates}
    run = _run_clients("ppnas", clients, job, work, config, f"throughput-{clients}-{time.time_ns()}")
    wall = max(end for _, end in run["spans"]) - min(start for start, _ in run["spans"])
    return {
        "clients": clients,
        "candidates": run["candidates"],
        "cpu_seconds_per_candidate": args.cpu,
        "wall_seconds": round(wall, 2),
        "candidates_per_minute": round(run["candidates"] / wall * 60, 2),
        "errors": len(run["errors"]),
        "load_average_before": run["load_average_before"],
        "load_average_after": run["load_average_after"],
    }


def scaling(args: argparse.Namespace, work: pathlib.Path, config: pathlib.Path) -> Dict[str, Any]:
    """Pairs of runs (1 client, then 2) until the speedup is stable."""
    pairs: List[Dict[str, Dict]] = []
    speedups: List[float] = []
    while len(pairs) < args.max_repeats and not _stable(speedups, SPEEDUP_STABLE):
        one, two = (candidates_per_minute(n, args, work, config) for n in (1, 2))
        pairs.append({"one_client": one, "two_clients": two})
        speedups.append(two["candidates_per_minute"] / one["candidates_per_minute"])
    loads = [p[k][when] for p in pairs for k in p for when in ("load_average_before", "load_average_after")]
    return {
        "pairs": pairs,
        "speedups": [round(s, 3) for s in speedups],
        "stable": _stable(speedups, SPEEDUP_STABLE),
        "speedup_2_clients": round(statistics.median(speedups), 3),
        "load_average_max": max(loads),
        "baseline": "one_client, same CPU seconds per candidate, same run",
    }


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each round-trip measurement")
    parser.add_argument("--think", type=float, default=0.5, help="a round-trip client's candidate time (s, asleep)")
    parser.add_argument("--cpu", type=float, default=0.5, help="a throughput client's CPU seconds per candidate")
    parser.add_argument("--candidates", type=int, default=24, help="candidates per throughput client and run")
    parser.add_argument("--max_repeats", type=int, default=5, help="repeats of a pair before giving up on stability")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    _sys_path()
    from distributed_helpers import make_data, write_config

    with tempfile.TemporaryDirectory(prefix="ppnas-bench-") as tmp:
        work = pathlib.Path(tmp)
        config = write_config(work, make_data(work))
        headline = headline_round_trips(args, work, config)
        table = {
            f"{flavour}_think_{think}s": [round_trips(flavour, n, think, args.seconds, work, config) for n in (1, 8)]
            for flavour in FLAVOURS
            for think in (args.think, 0.0)
        }
        for flavour in FLAVOURS:  # the saturation row of 32 clients
            table[f"{flavour}_think_0.0s"].append(round_trips(flavour, 32, 0.0, args.seconds, work, config))
        throughput = scaling(args, work, config)
    from common import machine, save_result  # imports paddle: only after the forked clients

    result = {
        "benchmark": "distributed_throughput",
        "machine": machine(),
        "note": "2 CPU cores shared with other jobs while this ran: see the load averages of every run",
        "rtt_ms_32_clients": headline["p50_ms"]["ppnas"],
        "rtt_ms_32_clients_p95": headline["p95_ms"]["ppnas"],
        "rtt_ms_32_clients_paddleslim": headline["p50_ms"]["paddleslim"],
        "rtt_ms_32_clients_paddleslim_p95": headline["p95_ms"]["paddleslim"],
        "rtt_ratio_to_paddleslim": round(headline["p50_ms"]["ppnas"] / headline["p50_ms"]["paddleslim"], 2),
        "rtt_definition": f"median (p95) ms per request over every request of 32 clients each spending {args.think} s "
        "per candidate, median over the repeats; think 0.0 = clients back to back (saturation)",
        "rtt_baseline": "PaddleSlim 2.6 ControllerServer, same requests, same run, alternating with ppnas",
        "rtt_32_clients": headline,
        "round_trip": table,
        "speedup_2_clients": throughput["speedup_2_clients"],
        "throughput": throughput,
        "command": "python bench/distributed_throughput.py " + " ".join(sys.argv[1:]),
    }
    save_result("distributed_throughput", result)


if __name__ == "__main__":
    main()
