"""The check every space applies to a token list before decoding it."""

from typing import List

from ppnas.errors import SearchSpaceError


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
