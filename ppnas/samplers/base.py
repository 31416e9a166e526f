"""What samplers that learn nothing from rewards share: the history is their whole state."""

from typing import Any, Dict, Set, Tuple

from ppnas.history import CandidateRecord, History


class UnrewardedSampler:
    """The Controller protocol for samplers that ignore rewards; already recorded token lists are skipped, so
    a resumed search goes on where it stopped."""

    def __init__(self, history: History) -> None:
        self.seen: Set[Tuple[int, ...]] = {tuple(r["tokens"]) for r in history.read() if "tokens" in r}

    def recorded(self, record: CandidateRecord) -> None:
        """Never draw a recorded token list again; nothing to save: the history is the state."""
        self.seen.add(tuple(record.tokens))

    def info(self) -> Dict[str, Any]:
        return {}

    def close(self) -> None:
        """Nothing to release."""
