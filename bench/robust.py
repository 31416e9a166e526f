"""Long SANAS searches under a constraint: how far PaddleSlim's annealing gets, and what ppnas's costs per draw.

The issue-9 setting: the 9-token BlazeFace range table, init tokens [2, 1, 3, 8, 2, 1, 2, 1, 1],
init_temperature 10.24, reduce_rate 0.85, a smooth reward (minus the squared distance to a peak) and
every third draw rejected (a constraint; a rejected draw gets no reward). For each seed it runs
- PaddleSlim's own SAController (what LocalController wrapped before): rewarded steps until it exits
  with "cannot get a effective search space";
- ppnas's LocalController: the same search to --steps rewarded steps, counting the draws that left a
  used-up neighbourhood and timing every draw.
Usage: python bench/robust.py [--steps 300] [--seeds 5]
"""

import ppnas  # noqa: F401  # isort: skip
import argparse
import logging
import math
import statistics
import time
from typing import Dict, List

import numpy as np
from common import machine, save_result
from paddleslim.common.sa_controller import SAController

from ppnas.samplers.annealing import LocalController

RANGE = [7, 9, 12, 12, 6, 6, 6, 6, 2]
INIT = [2, 1, 3, 8, 2, 1, 2, 1, 1]
PEAK = [5, 7, 10, 2, 4, 5, 0, 3, 0]
T0, RATE = 10.24, 0.85


def reward(tokens: List[int]) -> float:
    return -sum((t - p) ** 2 for t, p in zip(tokens, PEAK)) / 100.0


def stock_steps(seed: int, steps: int) -> int:
    """Rewarded steps PaddleSlim's SAController reaches before it gives up (`steps` if it never does)."""
    np.random.seed(seed)
    sa = SAController((len(RANGE) * [0], RANGE), RATE, T0, max_try_times=50000, init_tokens=list(INIT))
    done, draws = 0, 0
    try:
        while done < steps:
            tokens = sa.next_tokens()
            draws += 1
            if draws % 3:
                done += 1
                sa.update(tokens, reward(tokens), done)
    except SystemExit:
        pass
    return done


def _ms_summary(seconds: List[float]) -> Dict[str, float]:
    ms = sorted(1000 * s for s in seconds)
    if not ms:
        return {}
    return {"median": statistics.median(ms), "p99": ms[math.ceil(0.99 * len(ms)) - 1], "max": ms[-1]}


def ppnas_run(seed: int, steps: int) -> Dict[str, object]:
    controller = LocalController(RANGE, INIT, init_temperature=T0, reduce_rate=RATE, seed=seed)
    done, draws = 0, 0
    near, far = [], []  # seconds per draw: PaddleSlim's one-token draw / a draw that left the neighbourhood
    while done < steps:
        used_up = not controller._unseen_neighbours()
        start = time.perf_counter()
        tokens = controller.next_tokens()
        (far if used_up else near).append(time.perf_counter() - start)
        draws += 1
        if draws % 3:
            done += 1
            controller.reward(tokens, reward(tokens), done)
    return {
        "steps": done,
        "draws": draws,
        "draws_that_left_the_neighbourhood": len(far),
        "best_reward": controller.info()["best_reward"],
        "one_token_draw_ms": _ms_summary(near),
        "farther_draw_ms": _ms_summary(far),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.INFO)  # both controllers log every reward
    seeds = list(range(args.seeds))
    stock = [stock_steps(seed, args.steps) for seed in seeds]
    ours = [ppnas_run(seed, args.steps) for seed in seeds]
    save_result(
        "robust",
        {
            "machine": {**machine(), "threads": 1},
            "setting": {
                "range_table": RANGE,
                "init_tokens": INIT,
                "init_temperature": T0,
                "reduce_rate": RATE,
                "rejected": "every third draw",
                "steps": args.steps,
                "seeds": seeds,
            },
            "paddleslim_steps_reached": stock,
            "ppnas": ours,
            "ppnas_all_finished": all(run["steps"] == args.steps for run in ours),
            "peak_reward": 0.0,
        },
    )


if __name__ == "__main__":
    main()
