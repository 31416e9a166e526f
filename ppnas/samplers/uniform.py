"""Uniform random draws over the space, each token list at most once (the one-shot search's `random` mode)."""

import random
from typing import List, Sequence

from ppnas.errors import SearchFinished
from ppnas.history import History
from ppnas.samplers.base import UnrewardedSampler

MAX_RANDOM_DRAWS = 1_000_000  # a random sampler that cannot find an unseen token list stops there


class RandomController(UnrewardedSampler):
    """Uniform draws over the space, each subnet at most once."""

    def __init__(self, range_table: Sequence[int], seed: int, history: History) -> None:
        super().__init__(history)
        self.range_table = list(range_table)
        self.rng = random.Random(seed)

    def next_tokens(self) -> List[int]:
        for _ in range(MAX_RANDOM_DRAWS):
            tokens = tuple(self.rng.randrange(n) for n in self.range_table)
            if tokens not in self.seen:
                self.seen.add(tokens)
                return list(tokens)
        raise SearchFinished(f"no unseen subnet in {MAX_RANDOM_DRAWS} random draws")
