"""The sampler: PaddleSlim's simulated-annealing controller behind a small interface.

`LocalController` runs PaddleSlim's `SAController` in this process (no socket, unlike SANAS with
is_server=True). The remote flavour, talking PaddleSlim's wire protocol to `tools/nas_server.py`, lives
in ppnas/distributed/client.py and offers the same methods, so the search loop does not know which one it drives.

What PaddleSlim gets wrong and this module mends (see ../shared/notes/DEPENDENCIES.md):
- best-reward bookkeeping starts at -1, so rewards below -1 were never "best": we start at -inf;
- `next_tokens` calls sys.exit() when the space is exhausted: we raise ControllerError;
- its annealing draws from numpy's global RNG, which training also uses: the controller keeps its own
  RNG state (saved in the checkpoint), so a seeded search repeats and a resumed one continues the same way.
"""

import json
import math
import os
import sys
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any, Dict, Iterator, List, Optional, Protocol, Sequence

import numpy as np
from paddleslim.common.sa_controller import SAController

from ppnas.errors import ControllerError
from ppnas.history import CandidateRecord

SANAS_CHECKPOINT = "sanas.checkpoints"  # PaddleSlim's file name and JSON layout, loadable by SANAS
PPNAS_STATE = "ppnas_controller.json"  # what PaddleSlim's format has no room for


class Controller(Protocol):
    """What the search loop needs from a sampler."""

    def next_tokens(self) -> List[int]: ...

    def recorded(self, record: CandidateRecord) -> None:
        """The loop appended `record` (trained, rejected or failed) to its history: learn from it and keep it.

        Called after the history line is written, so a kill before it returns is replayed on resume."""

    def info(self) -> Dict[str, Any]: ...

    def close(self) -> None: ...


@contextmanager
def _own_rng(holder: "LocalController") -> Iterator[None]:
    """Run numpy's global RNG from the controller's own state, then put the caller's state back."""
    outer = np.random.get_state()
    np.random.set_state(holder.rng_state)
    try:
        yield
    finally:
        holder.rng_state = np.random.get_state()
        np.random.set_state(outer)


def _state_to_json(state: tuple) -> list:
    name, keys, pos, has_gauss, cached = state
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _state_from_json(data: list) -> tuple:
    name, keys, pos, has_gauss, cached = data
    return (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)


class LocalController:
    """SAController in-process, with atomic checkpoints in PaddleSlim's format."""

    def __init__(
        self,
        range_table: Sequence[int],
        init_tokens: Sequence[int],
        init_temperature: Optional[float] = None,
        reduce_rate: float = 0.85,
        seed: Optional[int] = None,
        checkpoint_dir: Optional[str] = None,
        max_try_times: int = 50000,
    ) -> None:
        self.checkpoint_dir = checkpoint_dir
        self.sa = SAController(
            (len(range_table) * [0], list(range_table)),
            reduce_rate,
            init_temperature,
            max_try_times=max_try_times,
            init_tokens=list(init_tokens),
            reward=-math.inf,
            max_reward=-math.inf,
            iters=0,
            best_tokens=None,
            constrain_func=None,
            checkpoints=None,  # we save ourselves, atomically, after the history line is written
        )
        self.rng_state = np.random.RandomState(seed).get_state()

    # --- sampling ---------------------------------------------------------------------------------
    def next_tokens(self) -> List[int]:
        with _own_rng(self):
            try:
                return [int(t) for t in self.sa.next_tokens()]
            except SystemExit:
                raise ControllerError(
                    "the controller found no unseen token list in "
                    f"{self.sa._max_try_times} tries: the search space is exhausted"
                ) from None

    def reward(self, tokens: Sequence[int], reward: float, step: int) -> None:
        if not math.isfinite(reward):
            raise ControllerError(f"reward must be a finite number, got {reward}")
        with _own_rng(self):
            self.sa.update([int(t) for t in tokens], float(reward), min(int(step), self._last_warm_iter()), 1)

    def _last_warm_iter(self) -> int:
        """The last iteration whose temperature is still above 0.0 in floating point.

        SAController divides by T0 * reduce_rate**iter, which underflows to 0.0 after a few thousand
        rewards (about 4,600 at 0.85) and raises ZeroDivisionError; from there on the annealing is greedy
        anyway, so the iteration it sees stops at the last one with a positive temperature.
        """
        rate, start = self.sa._reduce_rate, self.sa._init_temperature
        if not 0.0 < rate < 1.0:
            return 2**62
        return int(math.log(sys.float_info.min / start) / math.log(rate))

    def info(self) -> Dict[str, Any]:
        best = self.sa.max_reward
        return {
            "best_tokens": self.sa.best_tokens,
            "best_reward": None if best == -math.inf else best,
            "current_tokens": self.sa.current_tokens,
            "iter": self.sa._iter,
            "temperature": self.temperature,
        }

    @property
    def temperature(self) -> float:
        return self.sa._init_temperature * self.sa._reduce_rate**self.sa._iter

    def close(self) -> None:
        """Nothing to release in-process."""

    # --- checkpoint -------------------------------------------------------------------------------
    def recorded(self, record: CandidateRecord) -> None:
        """Apply the record's reward (the step is the temperature's iteration), then checkpoint."""
        self.replay(asdict(record))
        self.checkpoint()

    def checkpoint(self) -> None:
        """Write the controller state (atomically, file by file); nothing without a checkpoint_dir."""
        if not self.checkpoint_dir:
            return
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        scene = {k: v for k, v in self.sa.__dict__.items() if k != "_checkpoints"}
        _write_json_atomic(os.path.join(self.checkpoint_dir, SANAS_CHECKPOINT), scene)
        extra = {"rng_state": _state_to_json(self.rng_state)}
        _write_json_atomic(os.path.join(self.checkpoint_dir, PPNAS_STATE), extra)

    def load(self, checkpoint_dir: str) -> None:
        """Restore a state written by `checkpoint` (or a PaddleSlim SANAS checkpoint without our extras)."""
        path = os.path.join(checkpoint_dir, SANAS_CHECKPOINT)
        if not os.path.isfile(path):
            raise ControllerError(f"no controller checkpoint at {path}: is this the save_dir of a search?")
        with open(path, encoding="utf-8") as f:
            scene = json.load(f)
        for key in ("_tokens", "_reward", "_max_reward", "_best_tokens", "_iter", "_searched"):
            if key not in scene:
                raise ControllerError(f"{path} is not a SANAS checkpoint: key {key} is missing")
            setattr(self.sa, "_" + key.lstrip("_"), scene[key])
        self.sa._current_tokens = scene.get("_current_tokens", scene["_tokens"])
        extra_path = os.path.join(checkpoint_dir, PPNAS_STATE)
        if os.path.isfile(extra_path):
            with open(extra_path, encoding="utf-8") as f:
                extra = json.load(f)
            self.rng_state = _state_from_json(extra["rng_state"])

    def replay(self, record: Dict[str, Any], iteration: Optional[int] = None) -> None:
        """Apply a history record: a reward at `iteration` (default: the record's step), else mark it seen."""
        tokens = [int(t) for t in record["tokens"]]
        if record.get("status") == "trained":
            self.reward(tokens, float(record["reward"]), int(record["step"] if iteration is None else iteration))
        else:
            self.sa._searched[str(tokens)] = -1

    def holds(self, record: Dict[str, Any]) -> bool:
        """Whether the state already has this record: its reward (a trained one) or its tokens as seen.

        SAController stores each reward under the tokens, and -1 for a list it drew; so a resume tells a
        history line its checkpoint holds from one a kill left out (a reward of exactly -1 cannot be told).
        """
        seen = self.sa._searched.get(str([int(t) for t in record["tokens"]]))
        if record.get("status") == "trained":
            return seen is not None and seen != -1 and seen == float(record["reward"])
        return seen is not None


def _write_json_atomic(path: str, data: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
