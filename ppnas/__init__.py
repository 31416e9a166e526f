"""ppnas: hardware-aware neural architecture search on PaddlePaddle.

Import order is load-bearing. With paddle 2.6.2 on this Python build, importing paddle before zlib (paddle
itself imports zlib after loading libpaddle.so) leaves zlib broken for the whole process: the next
`import scipy`, `paddleslim`, `sklearn` or `pycocotools` fails with "zlib.error: inconsistent stream
state" or a segmentation fault. Importing zlib first avoids it, so every package and entry point of the
project starts by importing this module. When paddle was already imported the wrong way round, nothing
in-process can repair it, so we stop with an explanation instead of a crash further on.
"""

import zlib  # noqa: F401  # isort: skip
import sys

__version__ = "0.1.0"


def _zlib_loaded_after_paddle() -> bool:
    order = list(sys.modules)
    return "paddle.base.libpaddle" in order and order.index("zlib") > order.index("paddle.base.libpaddle")


if _zlib_loaded_after_paddle():
    raise ImportError(
        "paddle was imported before zlib, which breaks paddle 2.6.2's later imports of scipy/paddleslim "
        "(zlib 'inconsistent stream state' or a segfault). Put `import ppnas` (or `import zlib`) before "
        "`import paddle`."
    )
