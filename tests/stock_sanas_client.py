"""A stock PaddleSlim client, written as PaddleDetection's slim/nas/train_nas.py wrote it, evaluating real
BlazeFace candidates with the project's task: python tests/stock_sanas_client.py CONFIG PORT

Prints one JSON line per event: {"client"}, then {"tokens", "reward", "ok"} per candidate, then
{"finished", "info"} when the server answers "search finished" (PaddleSlim's client raises SystemExit).
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import json
import sys

from paddleslim.nas import SANAS

import search_space  # noqa: F401  # registers BlazeFaceNasSpace for PaddleSlim's space factory
from ppnas.config import load_config
from ppnas.tasks.detection import BlazeFaceTask, with_search_defaults


def main(config: str, port: int) -> None:
    task = BlazeFaceTask(with_search_defaults(load_config(config)))
    sa_nas = SANAS(["BlazeFaceNasSpace"], server_addr=("127.0.0.1", port), is_server=False)
    print(json.dumps({"client": sa_nas._client_name}), flush=True)
    try:
        while True:
            sa_nas.next_archs()
            tokens = list(sa_nas._current_tokens)
            reward = float(task.train_and_evaluate(task.build(tokens), None))
            ok = sa_nas.reward(reward)
            print(json.dumps({"tokens": tokens, "reward": reward, "ok": ok}), flush=True)
    except SystemExit:  # PaddleSlim's ControllerClient.next_tokens() on an answer that is not tokens
        print(json.dumps({"finished": True, "info": sa_nas.current_info()}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
