"""A stock PaddleSlim `SANAS(..., is_server=False)` client joins tools/nas_server.py (127.0.0.1)."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import json
import subprocess
import sys

from distributed_helpers import PROCESS_TIMEOUT, ROOT, Server, child_env, make_data, records, write_config


def test_stock_paddleslim_client_gets_tokens_and_its_rewards_are_recorded(tmp_path):
    data = make_data(tmp_path)
    config = write_config(tmp_path, data, search_steps=3, kernel_choices=[3, 5])  # PaddleSlim's default space
    server = Server(config, tmp_path / "server")
    try:
        script = [sys.executable, str(ROOT / "tests" / "stock_sanas_client.py"), str(config), str(server.port)]
        client = subprocess.run(script, capture_output=True, text=True, env=child_env(), timeout=PROCESS_TIMEOUT)
        assert client.returncode == 0, client.stderr[-2000:]
        assert server.wait() == 0
    finally:
        server.kill()
    events = [json.loads(line) for line in client.stdout.splitlines() if line.startswith("{")]
    name = events[0]["client"]
    sent = [e for e in events if "reward" in e]
    assert [e["ok"] for e in sent] == [True, True, True]
    assert events[-1]["finished"] is True  # told "search finished", not a closed port and os._exit(0)
    assert events[-1]["info"]["best_reward"] == max(e["reward"] for e in sent)
    shared = records(tmp_path / "server")
    assert [(r["tokens"], r["reward"], r["client"], r["status"], r["step"]) for r in shared] == [
        (e["tokens"], e["reward"], name, "trained", step) for step, e in enumerate(sent, start=1)
    ]
    assert all(r["structure"]["double_blaze_filters"] for r in shared)  # decoded by the server's space
