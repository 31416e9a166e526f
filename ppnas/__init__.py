"""ppnas: hardware-aware neural architecture search on PaddlePaddle.

Import order is load-bearing. With paddle 2.6.2 on this Python build, `import paddle` as the first import
of a process leaves zlib broken in it: the next `import scipy`, `paddleslim`, `sklearn` or `pycocotools`
fails with "zlib.error: inconsistent stream state" or a segmentation fault. Importing zlib first avoids
it, so every package and entry point of the project starts by importing this module. When paddle is
already loaded, we probe zlib in a forked child (a probe in this process could segfault it): if it is
broken, nothing in-process can repair it, so we stop with an explanation instead of a crash further on.
"""

import zlib  # isort: skip
import os
import sys
import warnings

# paddle imports the stdlib distutils; paddleslim's latency_predictor then imports pip, and setuptools'
# distutils hack (_distutils_hack.clear_distutils) warns "Setuptools is replacing distutils." on every
# command. The swap is harmless here (nothing of ours uses distutils); the filter must be set before
# paddleslim is imported, and every import of ppnas.* runs this file first.
warnings.filterwarnings("ignore", message="Setuptools is replacing distutils", category=UserWarning)

__version__ = "0.1.0"


def _zlib_works_here() -> bool:
    """Round-trip some bytes through zlib in a forked copy of this process."""
    if not hasattr(os, "fork"):
        return True
    pid = os.fork()
    if pid == 0:
        payload = b"ppnas" * 64
        try:
            ok = zlib.decompress(zlib.compress(payload)) == payload
        except Exception:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return status == 0


if "paddle" in sys.modules and not _zlib_works_here():
    raise ImportError(
        "zlib is broken in this process because paddle was imported before it (a paddle 2.6.2 trap: "
        "scipy/paddleslim imports would fail with 'inconsistent stream state' or a segfault). "
        "Put `import ppnas` (or `import zlib`) before `import paddle`."
    )
