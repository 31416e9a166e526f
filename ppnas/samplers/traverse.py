"""The space on a grid, in order (the one-shot search's `traverse` mode, United-Perception's subnet_sample_mode)."""

import itertools
from typing import Iterator, List, Sequence

from ppnas.errors import ConfigError, SearchFinished
from ppnas.history import History
from ppnas.samplers.base import UnrewardedSampler


def traverse_tokens(range_table: Sequence[int], stride: int) -> Iterator[List[int]]:
    """Every token list whose tokens are multiples of `stride` (0, stride, 2*stride, ... per position)."""
    if stride < 1:
        raise ConfigError(f"traverse_stride must be at least 1, got {stride}")
    for tokens in itertools.product(*[range(0, n, stride) for n in range_table]):
        yield list(tokens)


class TraverseController(UnrewardedSampler):
    """The space enumerated with a stride, in order; the search ends when it is exhausted."""

    def __init__(self, range_table: Sequence[int], stride: int, history: History) -> None:
        super().__init__(history)
        self.order = traverse_tokens(range_table, stride)

    def next_tokens(self) -> List[int]:
        for tokens in self.order:
            if tuple(tokens) not in self.seen:
                self.seen.add(tuple(tokens))
                return tokens
        raise SearchFinished("the traversal has visited every subnet")
