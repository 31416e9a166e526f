"""Search spaces registered in PaddleSlim's SEARCHSPACE (importing this package registers them)."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
