"""Per-op latency tables: read, derive op keys from a Paddle model, estimate, build."""

import ppnas  # noqa: F401  # isort: skip  # first: zlib before paddle, see ppnas/__init__.py
