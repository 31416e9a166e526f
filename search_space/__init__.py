"""Search spaces registered in PaddleSlim's SEARCHSPACE (importing this package registers them)."""

import ppnas  # noqa: F401  # isort: skip  # first: zlib before paddle, see ppnas/__init__.py
from search_space import (
    blazeface,  # noqa: E402,F401  # registers BlazeFaceNasSpace
    mobilenetv2_seg,  # noqa: E402,F401  # registers MobileNetV2SpaceSeg
)
