"""The samplers, side by side (as Optuna keeps its samplers): each proposes token lists and learns from records.

- annealing.py  PaddleSlim's simulated annealing (SAController) in this process: SANAS
- uniform.py    uniform random draws, each token list at most once
- traverse.py   the space on a grid, in order
- remote.py     the client of a controller server (ppnas/controller_server/), any sampler behind it
- in_process.py the controller server's own search loop, drawing from the same service as its clients
- connect.py    THE one place that picks which of them a search talks to
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
