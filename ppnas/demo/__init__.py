"""Generators of small datasets in real on-disk formats, for demos and tests (nothing is downloaded)."""

import os

# the command that writes each demo set (tools/make_*_data.py), for messages about a missing dataset
DEMO_COMMANDS = {
    "wider": "python tools/make_demo_data.py --out {path}",
    "cityscapes": "python tools/make_seg_demo_data.py --out {path}",
}


def demo_command(kind: str, path: str) -> str:
    """The command that generates the demo set `kind` at `path` (relative to the working folder when inside it)."""
    relative = os.path.relpath(path)
    return DEMO_COMMANDS[kind].format(path=path if relative.startswith("..") else relative)
