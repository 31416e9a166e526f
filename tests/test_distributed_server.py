"""The controller server in-process on 127.0.0.1: key, ports, secret key, lost server, leases, in-process serving."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import json
import socket
import threading
import time

import pytest
from distributed_helpers import request
from paddleslim.nas import SANAS

import ppnas.distributed.connect
import search_space  # noqa: F401  # registers the spaces for PaddleSlim's factory
from ppnas.distributed.client import RemoteController, ServerRefused
from ppnas.distributed.connect import open_controller
from ppnas.distributed.leases import BEAT, NoTokensYet, SearchService, ServiceSettings
from ppnas.distributed.server import ORIGINAL_SEG_SPACE_CONFIG, ControllerServer, ServerSettings, default_key
from ppnas.errors import ConfigError, ControllerError, SearchFinished
from ppnas.history import CandidateRecord, History
from ppnas.sanas.controller import LocalController
from ppnas.sanas.runner import SearchOptions
from ppnas.spaces import build_space

SPACE = build_space("BlazeFaceNasSpace")
RANGE = SPACE.range_table()


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
    quick = ppnas.distributed.connect.server_settings
    monkeypatch.setattr(
        ppnas.distributed.connect, "server_settings", lambda options: quick(options, linger_seconds=0.5)
    )
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
    with open_controller(options, RANGE, SPACE.init_tokens(), history) as local:
        port = int(capsys.readouterr().out.split("listening on 127.0.0.1:")[1].split()[0])
        remote = RemoteController(("127.0.0.1", port), default_key("detection", "BlazeFaceNasSpace"), "far")

        def remote_loop():
            try:
                while True:
                    tokens = remote.next_tokens()
                    time.sleep(0.05)
                    remote.reward(tokens, 0.25, len(remote_done) + 1)
                    remote.save(0)  # no local history: the reward went at once
                    remote_done.append(tokens)
            except SearchFinished:
                pass

        worker = threading.Thread(target=remote_loop)
        worker.start()
        try:
            while True:
                tokens = local.next_tokens()
                time.sleep(0.05)
                local.reward(tokens, 0.5, len(local_done) + 1)
                history.append(CandidateRecord(tokens, "trained", step=len(local_done) + 1, reward=0.5))
                local.save(0)
                local_done.append(tokens)
        except SearchFinished:
            pass
        worker.join(timeout=30)
    shared = history.trained()
    assert remote_done and local_done  # both drew from the same controller
    assert 6 <= len(shared) == len(remote_done) + len(local_done) <= 7
    assert sorted(tuple(r["tokens"]) for r in shared if r["client"] == "far") == sorted(map(tuple, remote_done))
    assert json.loads((tmp_path / "ppnas_controller.json").read_text())["records_written"] == len(shared)


def test_no_unseen_neighbour_while_candidates_are_out_means_wait_not_the_end(tmp_path):
    controller = LocalController(RANGE, SPACE.init_tokens(), seed=0, max_try_times=200)
    svc = SearchService(controller, History.in_dir(str(tmp_path)), ServiceSettings(5))
    out = []
    with pytest.raises(NoTokensYet):
        for _ in range(sum(RANGE)):  # more than the neighbours of the first candidate
            out.append(svc.next_tokens("c", BEAT))
    assert svc.failure is None and len(svc.leases) == len(out)
    with pytest.raises(NoTokensYet):  # nothing moved: answered at once
        svc.next_tokens("c", BEAT)
    svc.reward("c", out[0], 0.5, 1, None, write=True)  # the annealing moves to a new candidate
    assert svc.next_tokens("c", BEAT) not in out
