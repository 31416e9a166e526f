"""The controller server in-process on 127.0.0.1: key, ports, secret key, lost server, leases, in-process
serving, framing, and the order of history line and checkpoint."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import json
import os
import socket
import threading
import time
from dataclasses import asdict

import numpy as np
import pytest
from distributed_helpers import DETECTION_KEY, make_data, ppnas_request, request, write_config
from paddleslim.nas import SANAS

import ppnas.samplers.connect
import search_space  # noqa: F401  # registers the spaces for PaddleSlim's factory
from ppnas.config import load_config
from ppnas.constraint import Constraint
from ppnas.controller_server.protocol import frame, next_message, reward_message, unframe
from ppnas.controller_server.serve import build_service
from ppnas.controller_server.service import (
    BEAT,
    NotLeased,
    NoTokensYet,
    SearchService,
    ServiceSettings,
    replay_journal,
)
from ppnas.controller_server.tcp import ORIGINAL_SEG_SPACE_CONFIG, ControllerServer, ServerSettings, default_key
from ppnas.engine.loop import SearchSettings, run_search
from ppnas.engine.meta import write_meta
from ppnas.engine.options import SearchOptions
from ppnas.errors import ConfigError, ControllerError, SearchFinished
from ppnas.history import CandidateRecord, History
from ppnas.samplers.annealing import LocalController, catch_up
from ppnas.samplers.connect import CLIENTS_DIR, open_controller, settle_client
from ppnas.samplers.in_process import InProcessController
from ppnas.samplers.remote import RemoteController, ServerRefused
from ppnas.spaces import build_space
from ppnas.tasks.detection import BlazeFaceTask, with_search_defaults

SPACE = build_space("BlazeFaceNasSpace")
RANGE = SPACE.range_table()


def _trained(tokens, reward, step=1, client="local"):
    return CandidateRecord(tokens, "trained", step=step, reward=reward, client=client)


def _state(controller: LocalController) -> dict:
    """Everything a checkpoint holds: SAController's fields and the controller's RNG."""
    scene = {k: v for k, v in controller.sa.__dict__.items() if k not in ("_checkpoints", "_constrain_func")}
    return {"scene": json.loads(json.dumps(scene)), "rng": [np.asarray(x).tolist() for x in controller.rng_state]}


def _serve(tmp_path, steps=3, key=None, **service):
    controller = LocalController(RANGE, SPACE.init_tokens(), seed=0, checkpoint_dir=str(tmp_path))
    svc = SearchService(controller, History.in_dir(str(tmp_path)), ServiceSettings(steps, **service))
    settings = ServerSettings("127.0.0.1", 0, key or default_key("detection", "BlazeFaceNasSpace"), key is None)
    server = ControllerServer(svc, RANGE, settings)
    server.start()
    return svc, server


def test_default_keys_are_what_paddleslim_derives_for_the_original_scripts():
    detection = SANAS(["BlazeFaceNasSpace"], server_addr=("127.0.0.1", 1), is_server=False)
    assert default_key("detection", "BlazeFaceNasSpace") == detection._key == "['BlazeFaceNasSpace']"
    configs = [("MobileNetV2SpaceSeg", dict(ORIGINAL_SEG_SPACE_CONFIG))]
    segmentation = SANAS(configs, server_addr=("127.0.0.1", 1), is_server=False)
    assert default_key("segmentation", "MobileNetV2SpaceSeg") == segmentation._key


def test_port_zero_is_printed_and_a_port_in_use_gives_the_faq_answer(tmp_path, capsys):
    _, server = _serve(tmp_path)
    try:
        port = server.address[1]
        assert f"listening on 127.0.0.1:{port}" in capsys.readouterr().out
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}: address already in use.*server_port.*TIME_WAIT"):
            ControllerServer(server.service, RANGE, ServerSettings("127.0.0.1", port, "k", False)).start()
    finally:
        server.stop()


def test_a_secret_key_refuses_everyone_else_and_changes_nothing(tmp_path):
    svc, server = _serve(tmp_path, key="s3cret")
    port = server.address[1]
    try:
        before = json.dumps(svc.controller.sa.__dict__, default=str)
        assert request(port, "next_tokens").startswith("error\tthis server has a secret key")
        assert request(port, "current_info").startswith("error\t")
        paddleslim_key = default_key("detection", "BlazeFaceNasSpace")
        assert request(port, f"{paddleslim_key}\t2,1,3,8,2,1,2,1,1\t0.9\t1\tx") == "error\twrong key"
        with pytest.raises(ServerRefused, match="refused our key"):
            RemoteController(("127.0.0.1", port), paddleslim_key, "c").next_tokens()
        assert json.dumps(svc.controller.sa.__dict__, default=str) == before
        assert svc.trained == 0 and not svc.leases
        tokens = RemoteController(("127.0.0.1", port), "s3cret", "c").next_tokens()
        assert len(tokens) == len(RANGE) and svc.leases
    finally:
        server.stop()


def test_a_lost_server_is_retried_then_raises_instead_of_exiting(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = RemoteController(("127.0.0.1", port), "k", "c", retry_seconds=1.0)
    start = time.monotonic()
    with pytest.raises(ControllerError, match="lost the controller server .* gave up after"):
        client.next_tokens()
    assert 1.0 <= time.monotonic() - start < 10


def test_a_stock_clients_expired_lease_is_recorded_failed(tmp_path):
    svc, server = _serve(tmp_path, lease_seconds=0.5)
    try:
        tokens = [int(t) for t in request(server.address[1], "next_tokens").split(",")]
        time.sleep(1.2)  # the accept loop expires leases twice a second
        failed = History.in_dir(str(tmp_path)).read()
        assert [(r["tokens"], r["status"], r["client"]) for r in failed] == [(tokens, "failed", "paddleslim")]
        assert "lease expired" in failed[0]["reason"] and not svc.leases
    finally:
        server.stop()


def test_a_search_with_server_ip_serves_remote_clients_from_its_own_process(tmp_path, capsys, monkeypatch):
    quick = ppnas.samplers.connect.server_settings
    monkeypatch.setattr(ppnas.samplers.connect, "server_settings", lambda options: quick(options, linger_seconds=0.5))
    options = SearchOptions(
        space_name="BlazeFaceNasSpace",
        search_steps=6,
        save_dir=str(tmp_path),
        config_path="",
        kind="detection",
        server_ip="127.0.0.1",
        server_port=0,
        seed=1,
    )
    history = History.in_dir(str(tmp_path))
    remote_done = []
    local_done = []
    with open_controller(options, SPACE, history) as local:
        port = int(capsys.readouterr().out.split("listening on 127.0.0.1:")[1].split()[0])
        remote = RemoteController(("127.0.0.1", port), default_key("detection", "BlazeFaceNasSpace"), "far")

        def remote_loop():
            try:
                while True:
                    tokens = remote.next_tokens()
                    time.sleep(0.05)
                    remote.recorded(_trained(tokens, 0.25, len(remote_done) + 1, "far"))
                    remote_done.append(tokens)
            except SearchFinished:
                pass

        worker = threading.Thread(target=remote_loop)
        worker.start()
        try:
            while True:
                tokens = local.next_tokens()
                time.sleep(0.05)
                record = _trained(tokens, 0.5, len(local_done) + 1)
                history.append(record)  # as run_search does: the line, then the controller
                local.recorded(record)
                local_done.append(tokens)
        except SearchFinished:
            pass
        worker.join(timeout=30)
    shared = history.trained()
    assert remote_done and local_done  # both drew from the same controller
    assert 6 <= len(shared) == len(remote_done) + len(local_done) <= 7
    assert sorted(tuple(r["tokens"]) for r in shared if r["client"] == "far") == sorted(map(tuple, remote_done))
    assert json.loads((tmp_path / "sanas.checkpoints").read_text())["_iter"] == len(shared)


def test_no_unseen_candidate_while_candidates_are_out_means_wait_and_the_end_comes_when_they_are_back(tmp_path):
    controller = LocalController([2, 2], [0, 0], seed=0)  # 4 token lists
    svc = SearchService(controller, History.in_dir(str(tmp_path)), ServiceSettings(5))
    out = [svc.next_tokens(f"c{i}", BEAT) for i in range(4)]
    assert sorted(out) == [[0, 0], [0, 1], [1, 0], [1, 1]]
    with pytest.raises(NoTokensYet):  # every unseen list is out: a failure still to come frees nothing, but wait
        svc.next_tokens("another", BEAT)
    assert svc.failure is None
    for i, tokens in enumerate(out[:-1]):
        svc.reward(f"c{i}", tokens, 0.5, i + 1, _trained(tokens, 0.5, i + 1, f"c{i}"), write=True)
    with pytest.raises(NoTokensYet):
        svc.next_tokens("another", BEAT)
    svc.add_record("c3", CandidateRecord(out[-1], "failed", reason="a NaN loss"))
    with pytest.raises(ControllerError, match="exhausted"):  # nothing out, nothing unseen: the real end
        svc.next_tokens("another", BEAT)


def test_the_servers_own_loop_waits_while_remote_clients_hold_every_unseen_candidate(tmp_path):
    controller = LocalController([2, 2], [0, 0], seed=0, max_try_times=200)  # 4 token lists
    svc = SearchService(controller, History.in_dir(str(tmp_path)), ServiceSettings(1))
    out = []
    with pytest.raises(NoTokensYet):
        for i in range(5):
            out.append(svc.next_tokens(f"far{i}", BEAT))
    outcome = {}

    def draw():
        try:
            outcome["tokens"] = InProcessController(svc, "local").next_tokens()
        except BaseException as err:  # noqa: B036  # the test wants whatever ended the draw
            outcome["error"] = err

    loop = threading.Thread(target=draw)
    loop.start()
    loop.join(1.0)
    assert loop.is_alive() and not outcome  # waiting, not crashed by NoTokensYet
    svc.reward("far0", out[0], 0.5, 1, _trained(out[0], 0.5, client="far0"), write=True)
    loop.join(5.0)
    assert isinstance(outcome.get("error"), SearchFinished)  # that reward ended the search: a normal end


def test_rewards_and_records_count_from_the_lease_holder_only_and_a_late_reward_replaces_its_failure(tmp_path):
    controller = LocalController(RANGE, SPACE.init_tokens(), seed=0, checkpoint_dir=str(tmp_path))
    history = History.in_dir(str(tmp_path))
    svc = SearchService(controller, history, ServiceSettings(5, beat_timeout=0.3))
    mine, theirs = svc.next_tokens("a", BEAT), svc.next_tokens("b", BEAT)
    never_handed = [0] * len(RANGE)
    with pytest.raises(NotLeased, match="not leased to b"):
        svc.reward("b", mine, 0.9, 1, _trained(mine, 0.9, client="b"), write=True)
    with pytest.raises(NotLeased):
        svc.add_record("b", CandidateRecord(mine, "failed", reason="made up"))
    with pytest.raises(NotLeased):
        svc.reward("a", never_handed, 0.9, 1, _trained(never_handed, 0.9, client="a"), write=True)
    assert history.read() == [] and svc.trained == 0
    time.sleep(0.4)
    assert svc.beat("b", theirs)  # b is alive; a fell silent
    svc.expire()
    assert [(r["tokens"], r["status"]) for r in history.read()] == [(mine, "failed")]
    assert not svc.beat("a", mine)  # "unknown": a's client stops training it
    with pytest.raises(NotLeased):  # the expired lease was a's, not b's
        svc.reward("b", mine, 0.9, 1, _trained(mine, 0.9, client="b"), write=True)
    assert svc.reward("a", mine, 0.9, 1, _trained(mine, 0.9, client="a"), write=True)  # a was slow, not dead
    assert not svc.reward("a", mine, 0.9, 1, _trained(mine, 0.9, client="a"), write=True)  # a resend
    assert not svc.add_record("a", CandidateRecord(mine, "failed", reason="CandidateLost"))
    assert [(r["tokens"], r["status"], r["reward"]) for r in history.read()] == [(mine, "trained", 0.9)]
    assert svc.trained == 1 and controller.info()["best_reward"] == 0.9
    resumed = LocalController(RANGE, SPACE.init_tokens(), checkpoint_dir=str(tmp_path))
    resumed.load(str(tmp_path))
    replay_journal(resumed, str(tmp_path))
    catch_up(resumed, history)
    assert _state(resumed) == _state(controller)  # the late reward is in the checkpoint once


def test_a_reward_sent_in_slow_pieces_arrives_whole(tmp_path):
    svc, server = _serve(tmp_path)
    port = server.address[1]
    try:
        tokens = json.loads(ppnas_request(port, next_message(DETECTION_KEY, "slow")))["tokens"]
        record = asdict(_trained(tokens, 0.75, client="slow"))
        payload = frame(reward_message(DETECTION_KEY, tokens, 0.75, 1, "slow", record))
        piece = len(payload) // 4 + 1
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each piece its own TCP segment
            for start in range(0, len(payload), piece):
                sock.sendall(payload[start : start + piece])
                time.sleep(0.2)  # 4x the pause that ends a stock message
            sock.shutdown(socket.SHUT_WR)
            reply = b"".join(iter(lambda: sock.recv(65536), b""))
        assert unframe(reply) == "ok"
        assert [(r["tokens"], r["reward"], r["client"]) for r in History.in_dir(str(tmp_path)).read()] == [
            (tokens, 0.75, "slow")
        ]
    finally:
        server.stop()


def _scripted_server(answers: list) -> tuple:
    """A peer on 127.0.0.1 that answers the i-th connection with answers[i] (raw bytes); counts connections."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    seen = []

    def serve():
        for answer in answers:
            conn, _ = listener.accept()
            with conn:
                seen.append(b"".join(iter(lambda c=conn: c.recv(65536), b"")))
                conn.sendall(answer)
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], seen


def test_an_incomplete_answer_is_retried_once_then_the_client_gives_up():
    tokens = frame(json.dumps({"tokens": [1, 2], "beat_seconds": 100}))
    server_cut_us = frame("error\tincomplete message (timed out)")
    port, seen = _scripted_server([tokens[:-3], server_cut_us, tokens])
    client = RemoteController(("127.0.0.1", port), "k", "c", retry_seconds=1)
    with pytest.raises(ControllerError, match="incomplete exchange twice"):
        client.next_tokens()
    assert len(seen) == 2
    port, seen = _scripted_server([tokens[:-3], tokens])
    client = RemoteController(("127.0.0.1", port), "k", "c", retry_seconds=1)
    assert client.next_tokens() == [1, 2]
    client.close()
    assert len(seen) == 2 and seen[0] == seen[1]


class _Killed(Exception):
    """The process dies here."""


class _KilledAfterATrainedLine(History):
    def append(self, record: CandidateRecord) -> None:
        super().append(record)
        if record.status == "trained":
            raise _Killed()


def test_a_kill_between_the_servers_own_history_line_and_its_checkpoint_applies_the_reward_once(tmp_path):
    config = write_config(tmp_path, make_data(tmp_path), search_steps=3)
    cfg = with_search_defaults(load_config(str(config)))
    task = BlazeFaceTask(cfg)
    save_dir = str(tmp_path / "server")
    options = SearchOptions(
        space_name="BlazeFaceNasSpace",
        search_steps=3,
        save_dir=save_dir,
        config_path=str(config),
        kind="detection",
        init_temperature=cfg["init_temperature"],
        server_ip="127.0.0.1",
        server_port=0,
        seed=0,
    )
    dying = _KilledAfterATrainedLine(History.in_dir(save_dir).path)
    settings = SearchSettings(search_steps=3, save_dir=save_dir, seed=0)
    constraint = Constraint.from_config(cfg["Constraint"], cfg)
    range_table, init = task.space.range_table(), task.space.init_tokens()
    with pytest.raises(_Killed):
        with open_controller(options, task.space, dying) as controller:  # is_server and server_ip
            run_search(task, controller, constraint, dying, settings)
    records = History.in_dir(save_dir).read()
    assert [r["status"] for r in records][-1] == "trained"
    options.resume_dir = save_dir
    resumed = build_service(options, range_table, init, History.in_dir(save_dir)).controller
    expected = LocalController(range_table, init, init_temperature=cfg["init_temperature"], seed=0)
    for record in records:  # the draws and the one reward of the run, each applied once
        assert expected.next_tokens() == record["tokens"]
        if record["status"] == "trained":
            expected.reward(record["tokens"], record["reward"], 1)
    assert _state(resumed) == _state(expected)


def test_a_client_writes_its_own_folder_refuses_a_controllers_and_keeps_its_name_on_resume(tmp_path):
    def client_options(**keys):
        return SearchOptions(
            space_name="BlazeFaceNasSpace",
            search_steps=1,
            save_dir=str(tmp_path / "out"),
            config_path="",
            kind="detection",
            is_server=False,
            **keys,
        )

    new = client_options(client_name="host-7")
    settle_client(new)
    assert new.save_dir == str(tmp_path / "out" / CLIENTS_DIR / "host-7")  # not the server's history
    os.makedirs(new.save_dir)
    write_meta(new, Constraint.from_config(None, {}), "ppnas.tasks.detection", [1, 3, 64, 64], {})
    server_dir = tmp_path / "server"
    LocalController(RANGE, SPACE.init_tokens(), checkpoint_dir=str(server_dir)).checkpoint()
    with pytest.raises(ConfigError, match="holds a controller's state .*sanas.checkpoints.*-r that folder"):
        settle_client(client_options(client_name="host-8", resume_dir=str(server_dir)))
    with pytest.raises(ConfigError, match="not a client's folder"):
        settle_client(client_options(client_name="host-8", resume_dir=str(tmp_path / "out")))
    resumed = client_options(client_name="host-99", resume_dir=new.save_dir)  # a new process: a new pid
    settle_client(resumed)
    assert resumed.client_name == "host-7"


def test_draws_and_rewards_are_journal_lines_and_a_killed_server_resumes_from_them_exactly(tmp_path):
    controller = LocalController(RANGE, SPACE.init_tokens(), seed=0, checkpoint_dir=str(tmp_path))
    history = History.in_dir(str(tmp_path))
    svc = SearchService(controller, history, ServiceSettings(5))
    snapshot = (tmp_path / "sanas.checkpoints").read_bytes()
    first, second = svc.next_tokens("a", BEAT), svc.next_tokens("b", BEAT)
    svc.reward("a", first, 0.7, 1, _trained(first, 0.7, client="a"), write=True)
    assert (tmp_path / "sanas.checkpoints").read_bytes() == snapshot  # no rewrite of the growing checkpoint
    assert len((tmp_path / "ppnas_journal.jsonl").read_text().splitlines()) == 4  # start, 2 draws, 1 reward
    # killed here: no snapshot at the end; the resume replays the journal
    options = SearchOptions("BlazeFaceNasSpace", 5, str(tmp_path), "", "detection", seed=0, resume_dir=str(tmp_path))
    resumed = build_service(options, RANGE, SPACE.init_tokens(), History.in_dir(str(tmp_path)))
    assert _state(resumed.controller) == _state(controller)
    assert [lease.tokens for lease in resumed.leases.values()] == [second]  # b's candidate is still b's
    assert resumed.next_tokens("b", BEAT) == second and resumed.next_tokens("c", BEAT) not in (first, second)
