"""The strategy-neutral core: the candidate loop (`loop`), the parts it talks to (`protocols`), the search
options and their defaults (`options`), the save_dir and `search_meta.json` rules (`meta`), the entry-point
glue (`runner`) and seeding (`seeding`). Every strategy uses it; it imports no strategy."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
