"""FBNet: differentiable, latency-aware block search (here over PFLD facial-landmark models)."""

import ppnas  # noqa: F401  # isort: skip  # first: zlib before paddle, see ppnas/__init__.py
