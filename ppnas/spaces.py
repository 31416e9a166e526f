"""Look up a search space in PaddleSlim's SEARCHSPACE registry, with a clear error for a wrong name."""

from typing import Any, List

from paddleslim.nas.search_space import SEARCHSPACE

import search_space  # noqa: F401  # registers the project's spaces
from ppnas.errors import SearchSpaceError


def registered_spaces() -> List[str]:
    return sorted(SEARCHSPACE.module_dict)


def build_space(name: str, **kwargs: Any) -> Any:
    """Instantiate space `name`; extra keyword arguments go to the space's constructor."""
    known = registered_spaces()
    cls = SEARCHSPACE.get(name)
    if cls is None:
        raise SearchSpaceError(f"unknown search space '{name}'; registered spaces: {', '.join(known)}")
    return cls(None, None, None, block_mask=None, **kwargs)
