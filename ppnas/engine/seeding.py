"""One seed for every RNG a search draws from (paddle, numpy, Python)."""

import random

import numpy as np
import paddle


def seed_everything(seed: int) -> None:
    paddle.seed(seed)
    np.random.seed(seed % (2**32))
    random.seed(seed)
