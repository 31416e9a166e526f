"""The controller server: PaddleSlim's wire protocol (`protocol`), the state it guards (`service`: the
annealing controller, leases, the shared history), the TCP server (`tcp`), and how a search config becomes a
served search (`serve`). Its clients are ppnas/samplers/remote.py and stock PaddleSlim SANAS clients."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
