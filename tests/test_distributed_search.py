"""Distributed search on 127.0.0.1: tools/nas_server.py and real tools/train_nas.py clients, with faults."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import json
import random
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from distributed_helpers import (
    DETECTION_KEY,
    PROCESS_TIMEOUT,
    ROOT,
    Server,
    checkpoint,
    child_env,
    client_dir,
    client_name,
    exchange,
    finish,
    make_data,
    records,
    rewards_of,
    server_info,
    start_client,
    trained,
    wait_for,
    write_config,
    write_seg_config,
)

from ppnas.controller_server.protocol import IncompleteFrame, frame
from ppnas.report.build import write_report
from ppnas.samplers.annealing import LocalController
from ppnas.samplers.connect import CLIENTS_DIR
from ppnas.spaces import build_space


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    return make_data(tmp_path_factory.mktemp("wider"))


def test_two_clients_finish_and_every_reward_is_recorded_once(tmp_path, data):
    config = write_config(tmp_path, data, search_steps=6)
    server = Server(config, tmp_path / "server")
    try:
        clients = [start_client(config, server.port, tmp_path / f"client{i}") for i in range(2)]
        codes = [finish(c) for c in clients]
        assert codes == [0, 0]
        assert server.wait() == 0
    finally:
        server.kill()
    shared = trained(tmp_path / "server")
    local = trained(client_dir(tmp_path / "client0", clients[0])) + trained(
        client_dir(tmp_path / "client1", clients[1])
    )
    assert 6 <= len(shared) <= 7  # a candidate already out when the 6th reward came is kept
    assert rewards_of(shared) == rewards_of(local)  # every client reward, once, with its client's name
    assert len({tuple(r["tokens"]) for r in shared}) == len(shared)
    assert {r["client"] for r in shared} <= {client_name(c) for c in clients}
    assert all(r["flops"] and r["params"] and r["structure"] for r in shared)  # the clients' full records
    assert checkpoint(tmp_path / "server")["_iter"] == len(shared)
    report = write_report(str(tmp_path / "server"), top=7)  # the server's folder reports like a local search's
    text = (tmp_path / "server" / "report.md").read_text()
    assert "- constraint: flops in [0, " in text and "unknown" not in text and "| rank | step | client |" in text
    assert len(report["fragments"]) == len(report["top"]) == len(shared)
    assert "## Deploy" not in text  # the clients hold the weights, not the server
    names = [f"step {r['step']} of {r['client']}" for r in report["top"]]
    assert len(set(names)) == len(names) and all(f"### {i}. {n}" in text for i, n in enumerate(names, start=1))


def test_a_cut_off_client_stops_its_lost_candidate_and_a_killed_one_loses_only_its_own(tmp_path, data):
    config = write_config(tmp_path, data, search_steps=3)
    server = Server(config, tmp_path / "server", "--beat_timeout", "2")
    try:
        doomed = start_client(config, server.port, tmp_path / "doomed", "max_iters=4000")  # long candidates
        doomed_name = client_name(doomed)

        def doomed_lease():
            return [lease for lease in server_info(server.port)["leases"] if lease["client"] == doomed_name]

        def doomed_failures():
            return [r for r in records(client_dir(tmp_path / "doomed", doomed)) if r["status"] == "failed"]

        cut = wait_for(doomed_lease, 60, "the slow client to hold a candidate")[0]
        doomed.send_signal(signal.SIGSTOP)  # cut off: no heartbeat reaches the server
        wait_for(lambda: not doomed_lease(), 30, "the server to give the cut-off candidate up")
        doomed.send_signal(signal.SIGCONT)  # back: its next heartbeat is answered "unknown"
        started = time.monotonic()
        stopped = wait_for(doomed_failures, 30, "the cut-off client to stop training its lost candidate")
        assert time.monotonic() - started < 15  # far less than its 4000 iterations
        assert [r["tokens"] for r in stopped] == [cut["tokens"]] and "CandidateLost" in stopped[0]["reason"]
        lease = wait_for(doomed_lease, 60, "the slow client to hold its next candidate")[0]
        doomed.send_signal(signal.SIGKILL)
        assert finish(doomed) == -signal.SIGKILL
        steady = start_client(config, server.port, tmp_path / "steady")
        assert finish(steady) == 0
        assert server.wait() == 0
    finally:
        server.kill()
    shared = records(tmp_path / "server")
    failed = [r for r in shared if r["status"] == "failed"]
    assert [r["tokens"] for r in failed] == [cut["tokens"], lease["tokens"]]
    assert {r["client"] for r in failed} == {doomed_name}
    assert all("lease expired" in r["reason"] for r in failed)  # one record per candidate, the server's
    steady_dir = client_dir(tmp_path / "steady", steady)
    assert rewards_of(trained(tmp_path / "server")) == rewards_of(trained(steady_dir))
    assert len(trained(tmp_path / "server")) == 3


def test_server_and_client_killed_and_resumed_lose_and_repeat_nothing(tmp_path, data):
    config = write_config(tmp_path, data, search_steps=6, max_iters=4)
    save_dir = tmp_path / "server"
    server = Server(config, save_dir, "--beat_timeout", "3")
    client = start_client(config, server.port, tmp_path / "client")
    folder, name = client_dir(tmp_path / "client", client), client_name(client)
    try:
        wait_for(lambda: len(trained(save_dir)) >= 3, 60, "three rewards before the kill")
        server.proc.send_signal(signal.SIGKILL)
        server.kill()
        done_before = len(trained(save_dir))
        server = Server(config, save_dir, "--beat_timeout", "3", "-r", str(save_dir), port=server.port)
        wait_for(lambda: len(trained(save_dir)) > done_before, 60, "a reward after the server's restart")
        client.send_signal(signal.SIGKILL)
        finish(client)
        client = start_client(config, server.port, tmp_path / "client", "-r", str(folder))
        assert finish(client) == 0
        assert server.wait() == 0
    finally:
        server.kill()
        finish(client, timeout=1)
    shared = trained(save_dir)
    assert done_before < 6
    assert len(shared) == 6
    assert len({tuple(r["tokens"]) for r in shared}) == 6  # nothing evaluated twice
    lost = {tuple(r["tokens"]) for r in records(save_dir) if r["status"] == "failed"}
    assert not lost & {tuple(r["tokens"]) for r in shared}  # heartbeats kept the candidate in flight alive
    mine = trained(folder)
    assert {r["client"] for r in mine} == {name}  # the resumed client kept its name
    assert [r["step"] for r in mine] == list(range(1, 7))  # so its step count went on
    assert rewards_of(shared) == rewards_of(mine)  # nothing the client finished is lost
    scene = checkpoint(save_dir)
    assert scene["_iter"] == 6
    assert scene["_max_reward"] == max(r["reward"] for r in shared)


VALID = "2,1,3,8,2,1,2,1,0"


def _bad_messages(rng: random.Random) -> list:
    """(message bytes, expected reply prefix or None for "no answer expected"): nothing here may count."""
    key = DETECTION_KEY
    record = json.dumps({"tokens": [0, 0, 0, 0, 0, 0, 0, 0, 0], "status": "trained", "reward": 0.9})
    valid_record = json.dumps({"tokens": [int(t) for t in VALID.split(",")], "status": "trained", "reward": 0.9})
    kinds = [
        lambda: (rng.randbytes(rng.randint(1, 3000)), None),  # garbage bytes (may or may not be answered)
        lambda: (f"wrong key\t{VALID}\t0.99\t1\tintruder".encode(), "error\twrong key"),
        lambda: (f"{key[:-1]}\t{VALID}\t0.99\t1\tintruder".encode(), "error\twrong key"),
        lambda: (f"{key}\t2,1,x,8,2,1,2,1,0\t0.9\t1\tintruder".encode(), "error\ttoken"),
        lambda: (f"{key}\t2,1,3,8,2,1,2,1,0,0\t0.9\t1\tintruder\n".encode(), "error\texpected"),
        lambda: (f"{key}\t2,1,3,99,2,1,2,1,0\t0.9\t1\tintruder".encode(), "error\ttoken"),
        lambda: (f"{key}\t2,1,3,8,2,1,2,1,\u0661\t0.9\t1\tintruder".encode(), "error\ttoken"),
        lambda: (f"{key}\t{VALID}\tnan\t1\tintruder".encode(), "error\treward"),
        lambda: (f"{key}\t{VALID}\tlots\t1\tintruder".encode(), "error\treward"),
        lambda: (f"{key}\t{VALID}\t0.5\t-3\tintruder".encode(), "error\titeration"),
        lambda: (f"{key}\t{VALID}\t0.5\t1\t\x01bad".encode(), "error\tthe client"),
        lambda: (frame(f"{key}\t{VALID}\t0.9\t1\tintruder\t{record}"), "error\tthe record"),
        lambda: (frame(f"{key}\t{VALID}\t0.9\t1\tintruder\t{{not json"), "error\tthe record"),
        lambda: (frame(f"{key}\tppnas_record\tintruder\t{record}"), "error\t"),
        lambda: (f"{key}\tppnas_next\tintruder".encode(), "error\tppnas requests are framed"),
        lambda: (f"{key}\t{VALID}\t0.9\t1\tintruder\t{{}}".encode(), "error\tppnas requests are framed"),
        lambda: (frame(f"{key}\tppnas_next\tintruder")[:-4], "error\tincomplete message"),  # cut short
        lambda: (frame(f"{key}\tppnas_beat\tintruder\t{VALID}"), "unknown"),
        lambda: (f"{key}\t{VALID}\t0.99\t1\tintruder".encode(), "error\ttokens"),  # well formed, not leased
        lambda: (frame(f"{key}\t{VALID}\t0.9\t1\tintruder\t{valid_record}"), "error\ttokens"),
        lambda: (f"{key}\t{'1,' * 400_000}0\t0.9\t1\tintruder".encode(), "error\tmessage longer"),
        lambda: (b"\xff\xfe\x00next_tokens", "error\tnot UTF-8"),
        lambda: ("\t".join(["a"] * 9).encode(), "error\tnot a controller request"),
        lambda: (frame(f"{key}\tppnas_info") + frame(f"{key}\tppnas_info"), "error\tone request"),
    ]
    messages = [rng.choice(kinds)() for _ in range(950)]
    return messages + [(None, None)] * 50  # half-open: connect, send nothing, stay


def _send_bad(port: int, item: tuple, held: list) -> tuple:
    payload, expected = item
    if payload is None:
        held.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        return item, None
    try:
        return item, exchange(port, payload, timeout=10)
    except (OSError, UnicodeDecodeError, IncompleteFrame) as err:  # e.g. closed on a huge payload, garbage
        return item, f"error\t{err}"


def _replayed_checkpoint(history: list, folder) -> dict:
    """The checkpoint a fresh controller reaches when it hands out and is rewarded exactly `history`."""
    space = build_space("BlazeFaceNasSpace", kernel_choices=[3])
    controller = LocalController(
        space.range_table(),
        space.init_tokens(),
        init_temperature=10.24,
        reduce_rate=0.85,
        seed=0,
        checkpoint_dir=str(folder),
    )
    for step, record in enumerate(history, start=1):
        assert controller.next_tokens() == record["tokens"]  # the RNG served no one else
        controller.reward(record["tokens"], record["reward"], step)
    controller.checkpoint()
    return checkpoint(folder)


def test_malformed_messages_change_nothing(tmp_path, data):
    config = write_config(tmp_path, data, search_steps=6, max_iters=4)
    save_dir = tmp_path / "server"
    server = Server(config, save_dir, "--request_timeout", "2")
    client = start_client(config, server.port, tmp_path / "client")
    held: list = []
    try:
        wait_for(lambda: trained(save_dir), 60, "the search to start")
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda m: _send_bad(server.port, m, held), _bad_messages(random.Random(0))))
        during = len(trained(save_dir))
        assert finish(client) == 0
        assert server.wait() == 0
    finally:
        for sock in held:
            sock.close()
        server.kill()
        finish(client, timeout=1)
    assert during < 6, "the bad messages must arrive while the search runs"
    for (payload, expected), reply in results:
        if expected is not None and not expected.startswith("error\tmessage longer"):
            assert reply.startswith(expected), (payload[:80], reply)
    shared = records(save_dir)
    assert [r["status"] for r in shared] == ["trained"] * 6
    assert rewards_of(shared) == rewards_of(trained(client_dir(tmp_path / "client", client)))  # no intruder's
    assert checkpoint(save_dir) == _replayed_checkpoint(shared, tmp_path / "replay")  # every SAController field
    ppnas_state = json.loads((save_dir / "ppnas_controller.json").read_text())
    assert ppnas_state == json.loads((tmp_path / "replay" / "ppnas_controller.json").read_text())  # RNG state


def test_segmentation_entry_point_is_a_client_of_the_server(tmp_path):
    config = write_seg_config(tmp_path, steps=1)
    server = Server(config, tmp_path / "server")
    try:
        cmd = [sys.executable, str(ROOT / "slim" / "nas" / "train.py"), "--cfg", str(config), "--quiet"]
        cmd += ["--save_dir", str(tmp_path / "client"), "SLIM.NAS_IS_SERVER", "False"]
        cmd += ["SLIM.NAS_PORT", str(server.port)]
        client = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=PROCESS_TIMEOUT)
        assert client.returncode == 0, client.stdout[-2000:] + client.stderr[-2000:]
        assert server.wait() == 0
    finally:
        server.kill()
    shared = records(tmp_path / "server")
    assert [r["status"] for r in shared] == ["trained"]
    (own,) = (tmp_path / "client" / CLIENTS_DIR).iterdir()  # the client's own folder
    assert rewards_of(shared) == rewards_of(trained(own))
    assert len(shared[0]["tokens"]) == 25 and shared[0]["flops"] > 0  # MobileNetV2SpaceSeg, the client's record


def test_a_client_without_its_server_exits_non_zero_with_the_reason(tmp_path, data):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_config(tmp_path, data)
    client = start_client(config, port, tmp_path / "client", "client_retry_seconds=1")
    assert finish(client) == 2  # PaddleSlim's client ends with 0 here
    log = (tmp_path / "client-client.log").read_text()
    assert "error: lost the controller server at 127.0.0.1" in log and "Traceback" not in log
