"""Look up a search space in PaddleSlim's SEARCHSPACE registry, with a clear error for a wrong name."""

from typing import Any, List

from paddleslim.nas.search_space import SEARCHSPACE

from ppnas.errors import SearchSpaceError


def registered_spaces() -> List[str]:
    import search_space  # noqa: F401  # registers the project's spaces (imported here: they import this module)

    return sorted(SEARCHSPACE.module_dict)


def build_space(name: str, **kwargs: Any) -> Any:
    """Instantiate space `name`; extra keyword arguments go to the space's constructor."""
    known = registered_spaces()
    cls = SEARCHSPACE.get(name)
    if cls is None:
        raise SearchSpaceError(f"unknown search space '{name}'; registered spaces: {', '.join(known)}")
    return cls(None, None, None, block_mask=None, **kwargs)


def check_tokens(tokens: List[int], range_table: List[int], space_name: str) -> List[int]:
    """Tokens must be ints, one per range-table entry, each in [0, range)."""
    if len(tokens) != len(range_table):
        raise SearchSpaceError(f"{space_name} takes {len(range_table)} tokens, got {len(tokens)}: {list(tokens)}")
    checked = []
    for i, (tok, upper) in enumerate(zip(tokens, range_table)):
        if isinstance(tok, bool) or int(tok) != tok:
            raise SearchSpaceError(f"{space_name} token {i} must be an integer, got {tok!r}")
        if not 0 <= int(tok) < upper:
            raise SearchSpaceError(f"{space_name} token {i} = {tok} is out of range: it must be in [0, {upper - 1}]")
        checked.append(int(tok))
    return checked
