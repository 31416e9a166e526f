"""SANAS: PaddleSlim's simulated annealing, training every candidate from scratch (the loop is `search.py`)."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
