"""Files a killed run must never leave half-written, written once for every strategy.

- atomic writes: a temporary file in the same folder, flushed and fsynced, then renamed over the target, so a
  reader (or a resumed run) sees the old file or the new one, never a mix;
- `refuse_existing`: a new run never writes into a folder that already holds a run of the same kind;
- `content_hash`: what a file holds (not its path), for records that must notice an edited table.
"""

import hashlib
import json
import os
from typing import Any, Callable, Iterable, Optional

from ppnas.errors import ConfigError

HASH_CHARS = 16


def _replace_with(path: str, write: Callable[[str], None]) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # one temporary name per process: data-parallel ranks may write the same file (the FBNet LUT) at once
    tmp = f"{path}.{os.getpid()}.tmp"
    write(tmp)
    os.replace(tmp, path)
    return path


def atomic_write_text(path: str, text: str, durable: bool = True) -> str:
    """`durable` False skips the fsync: the rename is still atomic, but a power cut may lose the new file."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())

    return _replace_with(path, write)


def atomic_write_lines(path: str, lines: Iterable[str]) -> str:
    return atomic_write_text(path, "".join(lines))


def atomic_write_json(path: str, data: Any, indent: Optional[int] = 2, durable: bool = True) -> str:
    return atomic_write_text(path, json.dumps(data, indent=indent) + "\n", durable)


def atomic_paddle_save(obj: Any, path: str) -> str:
    """`paddle.save` (tensors, state dicts, plain values) replaced atomically."""
    import paddle

    return _replace_with(path, lambda tmp: paddle.save(obj, tmp))


def refuse_existing(folder: str, what: str, present: bool, save_dir: Optional[str] = None) -> None:
    """A new run stops when `folder` already holds `what` (a search, a supernet, ...): it must be resumed with
    -r `save_dir` (default: the folder itself), or write elsewhere."""
    if present:
        where = save_dir or folder
        raise ConfigError(f"{folder} already holds {what}: resume it with -r {where}, or set another save_dir")


def content_hash(path: str) -> str:
    """The first HASH_CHARS hex digits of the file's sha256."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:HASH_CHARS]


def text_hash(text: str) -> str:
    """The same digest of a text (a structure serialised with sorted keys)."""
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]
