"""The project's own supernets (registered in ppnas.oneshot.supernet.SUPERNETS when their module is imported)."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
