"""The sampler: PaddleSlim's simulated-annealing controller behind a small interface.

`LocalController` runs PaddleSlim's `SAController` in this process (no socket, unlike SANAS with
is_server=True). The remote flavour, talking PaddleSlim's wire protocol to `tools/nas_server.py`, lives
in ppnas/samplers/remote.py and offers the same methods, so the search loop does not know which one it drives.

What PaddleSlim gets wrong and this module mends (see ../shared/notes/DEPENDENCIES.md):
- best-reward bookkeeping starts at -1, so rewards below -1 were never "best": we start at -inf;
- `next_tokens` mutates one token of the current tokens and calls sys.exit() when it finds no unseen token
  list that way. Under a constraint or at a low temperature the current tokens stop moving, and their few
  neighbours (58 for BlazeFace) are soon all seen while millions of lists are not: we then draw farther
  away (see `next_tokens`), and raise ControllerError only when every token list of the space has been seen;
- its annealing draws from numpy's global RNG, which training also uses: the controller keeps its own
  RNG state (saved in the checkpoint), so a seeded search repeats and a resumed one continues the same way.
"""

import base64
import json
import logging
import math
import os
import sys
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence

import numpy as np
from paddleslim.common.sa_controller import SAController

from ppnas.errors import ControllerError
from ppnas.history import CandidateRecord, History
from ppnas.storage import atomic_write_text

if TYPE_CHECKING:
    from ppnas.engine.options import SearchOptions

SANAS_CHECKPOINT = "sanas.checkpoints"  # PaddleSlim's file name and JSON layout, loadable by SANAS
PPNAS_STATE = "ppnas_controller.json"  # what PaddleSlim's format has no room for
SCENE_SCALARS = ("_tokens", "_current_tokens", "_reward", "_max_reward", "_best_tokens", "_iter")  # besides _searched
FAR_TRIES = 200  # random draws at each distance before the exact pick among all unseen lists

_logger = logging.getLogger(__name__)


SA_DRAWS = ("random", "randint")  # the numpy.random functions SAController calls


@contextmanager
def _own_rng(holder: "LocalController") -> Iterator[None]:
    """SAController's draws (numpy.random.random and randint) from the controller's own RandomState.

    Swapping numpy's global state in and out instead (get_state / set_state, 35 us each) cost a controller
    server more than the rest of a draw or a reward together; the two module functions are swapped instead.
    """
    outer = {name: getattr(np.random, name) for name in SA_DRAWS}
    for name in SA_DRAWS:
        setattr(np.random, name, getattr(holder.rng, name))
    try:
        yield
    finally:
        for name, function in outer.items():
            setattr(np.random, name, function)


def _state_to_json(state: tuple) -> list:
    """numpy's RNG state; its 624 key words as base64 (a server saves it with every change: JSON numbers cost
    ten times more to write)."""
    name, keys, pos, has_gauss, cached = state
    words = base64.b64encode(np.asarray(keys, dtype="<u4").tobytes()).decode("ascii")
    return [name, words, int(pos), int(has_gauss), float(cached)]


def _state_from_json(data: list) -> tuple:
    name, keys, pos, has_gauss, cached = data
    if isinstance(keys, str):
        keys = np.frombuffer(base64.b64decode(keys), dtype="<u4")
    return (name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached)  # a list: checkpoints before 2026-12


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
        self.rng = np.random.RandomState(seed)

    # --- sampling ---------------------------------------------------------------------------------
    def next_tokens(self) -> List[int]:
        """PaddleSlim's draw (one token of the current tokens changed, never a list seen before) while the
        current tokens have an unseen neighbour; once they have none, a list farther away (`_far_tokens`).

        A controller server does not wait for its candidates still out before going farther: late in a long
        search the neighbourhood is used up most of the time, and waiting would leave all clients but one idle.
        """
        with _own_rng(self):
            if self._unseen_neighbours():
                try:
                    return [int(t) for t in self.sa.next_tokens()]
                except SystemExit:  # its random tries missed the few unseen neighbours left: take one ourselves
                    tokens = self._pick(self._unseen_neighbours())
            else:
                tokens = self._far_tokens()
            self.sa._searched[str(tokens)] = -1
            self.sa._current_tokens = tokens
            return tokens

    def _unseen_neighbours(self) -> List[List[int]]:
        """The unseen lists PaddleSlim's draw can reach: the current tokens and each one-token change of them."""
        current = [int(t) for t in self.sa._tokens]
        reach = [current] + [
            current[:i] + [value] + current[i + 1 :]
            for i, upper in enumerate(self.range_table)
            for value in range(upper)
            if value != current[i]
        ]
        return [tokens for tokens in reach if str(tokens) not in self.sa._searched]

    def _pick(self, choices: List[List[int]]) -> List[int]:
        return choices[int(self.rng.randint(len(choices)))]

    def _far_tokens(self) -> List[int]:
        """An unseen list 2, 3, ... tokens away from the current tokens, nearest first, else any unseen one.

        Changing more tokens keeps the search near where the annealing has brought it (a restart from a
        random point would throw that away); the current tokens still move only when a reward is accepted.
        """
        current = [int(t) for t in self.sa._tokens]
        movable = [i for i, upper in enumerate(self.range_table) if upper > 1]
        for distance in range(2, len(movable) + 1):
            for _ in range(FAR_TRIES):
                tokens = list(current)
                for i in self.rng.choice(movable, size=distance, replace=False):
                    upper = self.range_table[i]
                    tokens[i] = (current[i] + int(self.rng.randint(1, upper))) % upper  # any other value
                if str(tokens) not in self.sa._searched:
                    self._log_escape(current, tokens, f"{distance} tokens changed")
                    return tokens
        tokens = self._random_unseen()
        self._log_escape(current, tokens, "picked among all unseen token lists")
        return tokens

    def _log_escape(self, current: List[int], tokens: List[int], how: str) -> None:
        _logger.info(
            "every token list within one token of the current tokens %s has been seen; drew %s instead (%s)",
            current,
            tokens,
            how,
        )

    def _random_unseen(self) -> List[int]:
        """A uniformly random unseen token list, exactly: the k-th unseen index of the space in mixed radix."""
        size = math.prod(self.range_table)
        seen = sorted({self._index(json.loads(key)) for key in self.sa._searched} - {None})
        if len(seen) >= size:
            raise ControllerError(
                f"all {size} token lists of the search space have been seen: the search space is exhausted"
            )
        index = self._below(size - len(seen))
        for taken in seen:  # step over the seen indices at or below it
            if taken > index:
                break
            index += 1
        tokens = []
        for upper in reversed(self.range_table):
            index, token = divmod(index, upper)
            tokens.append(token)
        return tokens[::-1]

    def _below(self, bound: int) -> int:
        """A uniform integer in [0, bound), also for spaces larger than numpy's int64."""
        if bound < 2**63:
            return int(self.rng.randint(bound))
        while True:  # digit by digit over the whole space; bound is then nearly all of it, so this rarely repeats
            value = 0
            for upper in self.range_table:
                value = value * upper + int(self.rng.randint(upper))
            if value < bound:
                return value

    def _index(self, tokens: Sequence[int]) -> Optional[int]:
        """The mixed-radix index of a token list in the space; None for a list that does not fit it."""
        if len(tokens) != len(self.range_table) or not all(0 <= t < u for t, u in zip(tokens, self.range_table)):
            return None
        index = 0
        for token, upper in zip(tokens, self.range_table):
            index = index * upper + int(token)
        return index

    @property
    def rng_state(self) -> tuple:
        """The state of the controller's own RNG (numpy's RandomState.get_state)."""
        return self.rng.get_state()

    @rng_state.setter
    def rng_state(self, state: tuple) -> None:
        self.rng.set_state(state)

    @property
    def range_table(self) -> List[int]:
        return list(self.sa._range_table[1])

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
        write_state(self.checkpoint_dir, self.state_files(), durable=True)

    def state_files(self) -> Dict[str, str]:
        """The checkpoint's files (name -> JSON text) as the state is now; the caller may write them later."""
        scene = {k: v for k, v in self.sa.__dict__.items() if k != "_checkpoints"}
        extra = {"rng_state": _state_to_json(self.rng_state)}
        return {SANAS_CHECKPOINT: json.dumps(scene), PPNAS_STATE: json.dumps(extra)}

    def changes(self, keys: Iterable[str]) -> Dict[str, Any]:
        """What a draw or a reward changed, small and absolute (applying it twice is applying it once): the
        annealing's scalars and tokens, the seen list's entries under `keys`, the RNG."""
        searched = self.sa._searched
        return {
            "sa": {name: getattr(self.sa, name) for name in SCENE_SCALARS},
            "searched": {key: searched[key] for key in keys if key in searched},
            "rng_state": _state_to_json(self.rng_state),
        }

    def apply_changes(self, changes: Mapping[str, Any]) -> None:
        """Apply what `changes` returned (a server's journal, on resume)."""
        for name, value in changes["sa"].items():
            setattr(self.sa, name, value)
        self.sa._searched.update(changes["searched"])
        self.rng_state = _state_from_json(changes["rng_state"])

    def load(self, checkpoint_dir: str) -> None:
        """Restore a state written by `checkpoint` (or a PaddleSlim SANAS checkpoint without our extras)."""
        path = os.path.join(checkpoint_dir, SANAS_CHECKPOINT)
        if not os.path.isfile(path):
            raise ControllerError(f"no controller checkpoint at {path}: is this the save_dir of a search?")
        with open(path, encoding="utf-8") as f:
            scene = json.load(f)
        keys = ("_tokens", "_reward", "_max_reward", "_best_tokens", "_iter", "_searched")
        for key in keys:
            if key not in scene:
                raise ControllerError(f"{path} is not a SANAS checkpoint: key {key} is missing")
        for key in ("_tokens", "_best_tokens"):
            if scene[key] is not None and self._index(scene[key]) is None:
                raise ControllerError(
                    f"{path}: its {key[1:]} {scene[key]} do not fit this search space's range table "
                    f"{self.range_table}: it is the checkpoint of another search (another space or kernel_choices)"
                )
        for key in keys:
            setattr(self.sa, key, scene[key])
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


def write_state(folder: str, files: Dict[str, str], durable: bool) -> None:
    """Write checkpoint files (LocalController.state_files) atomically, one by one, SANAS checkpoint first."""
    os.makedirs(folder, exist_ok=True)
    for name in sorted(files, key=lambda n: n != SANAS_CHECKPOINT):
        atomic_write_text(os.path.join(folder, name), files[name] + "\n", durable=durable)


def annealing_controller(options: "SearchOptions", range_table: List[int], init_tokens: List[int]) -> LocalController:
    """A LocalController checkpointing into save_dir; restored from resume_dir when resuming."""
    controller = LocalController(
        range_table,
        init_tokens,
        init_temperature=options.init_temperature,
        reduce_rate=options.reduce_rate,
        seed=options.seed,
        checkpoint_dir=options.save_dir,
    )
    if options.resume_dir:
        controller.load(options.resume_dir)
    return controller


def catch_up(controller: LocalController, history: History) -> None:
    """Apply the history lines the checkpoint does not hold (a kill fell between a line and its checkpoint).

    Each line is checked against the controller's own record of rewards (`LocalController.holds`), not
    counted, so a line is never applied twice: several writers (clients, the server's own loop) append
    in any order, and a late reward replaces an earlier line. Rewards are replayed with the search's
    running count of rewards, as SearchService applied them.
    """
    done = 0
    for record in history.read():
        if record.get("status") == "trained":
            done += 1
        if not controller.holds(record):
            controller.replay(record, iteration=done)
