"""One-shot (BigNAS) search over any registered supernet: dynamic ops and blocks, the declared space, the training
rule and loop, the search over the trained supernet, its phases and exports."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
