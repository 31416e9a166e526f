"""One-shot (BigNAS) search for BlazeFace: supernet, training rule, loop, search over the supernet, export."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
