"""Per-op latency tables: read, derive op keys from a Paddle model, estimate, build."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
