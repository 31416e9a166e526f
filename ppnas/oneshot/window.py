"""Window-aware sandwich sampling (`sandwich_sampling: window`, AttentiveNAS-style): the random members of each
sandwich step are drawn from the uniform sampler and kept only when they fall inside the config's Constraint
window, priced as the search and sample_flops price them (ppnas/oneshot/pricing.py, equal to tracing the subnet's
plain model) at the input size it runs at. The search only ever scores subnets inside the window, so training the
supernet's weights on them spends the iterations where they count.

Drawing is rejection from the uniform draws of the iteration's RNG, and pricing touches no global RNG, so which
subnets an iteration trains depends on (seed, iteration) alone: a resumed run draws what the killed one would have.
"""

import functools
import random
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from ppnas.constraint import Constraint
from ppnas.errors import ConfigError
from ppnas.oneshot.algorithm import sample_tokens
from ppnas.oneshot.pricing import kept_rng, subnet_pricer
from ppnas.oneshot.settings import oneshot_constraint
from ppnas.oneshot.supernet import build_supernet

PRICE_CACHE = 2**16  # priced subnets kept (a tuple and a float each): repeated draws of a small space cost nothing


class WindowSampler:
    """Random subnets inside `constraint`'s window, by rejection from the uniform sampler (at most `tries` draws)."""

    def __init__(self, cfg: Mapping[str, Any], constraint: Constraint, tries: int) -> None:
        if tries < 1:
            raise ConfigError(f"max_rejects must be at least 1 with sandwich_sampling: window, got {tries}")
        with kept_rng():
            # a supernet of its own, with random weights: it only cuts plain models, and pricing must not run the
            # trained supernet (its active subnet, its DataParallel wrapper)
            self.supernet = build_supernet(cfg)
        self.space = self.supernet.space
        self.pricer = subnet_pricer(self.supernet, constraint, cfg)
        self.constraint = constraint
        self.tries = tries
        self.price = functools.lru_cache(maxsize=PRICE_CACHE)(self._price)

    def _price(self, tokens: Tuple[int, ...], size: Optional[Tuple[int, ...]]) -> float:
        """The constraint's value of the subnet at `size` (None: its own image_size), from the cached parts."""
        subnet = self.space.decode(list(tokens))
        if size is not None:
            subnet.image_size = list(size)
        return self.pricer.measure(subnet).value(self.constraint.ctype)

    def draw(self, rng: random.Random, size: Optional[Sequence[int]] = None) -> List[int]:
        """Uniform draws until one is inside the window; a ConfigError after `tries` draws outside it."""
        closest: Optional[float] = None
        for _ in range(self.tries):
            tokens = sample_tokens(self.space, "random", rng)
            value = self.price(tuple(tokens), None if size is None else tuple(size))
            if self.constraint.admits_value(value):
                return tokens
            if closest is None or self._distance(value) < self._distance(closest):
                closest = value
        raise ConfigError(
            f"sandwich_sampling: window: none of {self.tries} random subnets (max_rejects) is inside the window "
            f"{self.constraint.window_text()}; the closest was {closest:g} {self.constraint.unit}. Widen the "
            "Constraint window, or train with sandwich_sampling: uniform"
        )

    def _distance(self, value: float) -> float:
        low, high = self.constraint.min_constraint, self.constraint.max_constraint
        return max(0.0, (low - value) if low is not None else 0.0, (value - high) if high is not None else 0.0)


def window_sampler(cfg: Mapping[str, Any]) -> Optional[WindowSampler]:
    """The config's window sampler, or None for BigNAS's uniform sampling (the default)."""
    if cfg["sandwich_sampling"] != "window":
        return None
    return WindowSampler(cfg, oneshot_constraint(cfg), int(cfg["max_rejects"]))
