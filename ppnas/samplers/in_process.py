"""The controller server's own search loop, drawing from the same SearchService as its remote clients."""

import logging
from typing import Any, Dict, List

from ppnas.controller_server.service import LOCAL, NoTokensYet, SearchService
from ppnas.controller_server.tcp import WAIT_SECONDS
from ppnas.errors import SearchFinished
from ppnas.history import CandidateRecord

_logger = logging.getLogger(__name__)


class InProcessController:
    """Its history is the service's: the loop appends each line, then `recorded` applies it under the
    service's lock and checkpoints, in that order, as for a remote client's record."""

    def __init__(self, service: SearchService, client: str) -> None:
        self.service = service
        self.client = client

    def next_tokens(self) -> List[int]:
        told = False
        while True:
            seen = self.service.version
            try:
                tokens = self.service.next_tokens(self.client, LOCAL)
                break
            except NoTokensYet:  # every unseen neighbour is out with remote clients: one of them may move the search
                if not told:
                    _logger.info("every unseen candidate near the current one is out with remote clients: waiting")
                    told = True
                self.service.wait_for_change(seen, WAIT_SECONDS)
        if tokens is None:
            raise SearchFinished()
        return tokens

    def recorded(self, record: CandidateRecord) -> None:
        if record.status == "trained":
            assert record.reward is not None and record.step is not None
            self.service.reward(self.client, record.tokens, record.reward, record.step, record, write=False)
        else:
            self.service.add_record(self.client, record, write=False)

    def info(self) -> Dict[str, Any]:
        return self.service.info()

    def close(self) -> None:
        """The server is stopped by open_controller."""
