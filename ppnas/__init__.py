"""ppnas: hardware-aware neural architecture search on PaddlePaddle.

The first import below is load-bearing: with paddle 2.6.2 on this Python build, importing paddle before
zlib (or cv2) makes a later `import scipy`/`paddleslim`/`pycocotools` crash in zlib's inflateReset2.
Every package and entry point of the project imports this module (or zlib) before anything else.
"""

import zlib  # noqa: F401  # isort: skip

__version__ = "0.1.0"
