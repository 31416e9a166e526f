"""PaddleSlim's controller wire protocol, plus the few messages ppnas adds, parsed strictly.

One request per TCP connection, tab-separated text, answered once, then the connection closes.
PaddleSlim's messages (paddleslim/common/controller_{server,client}.py), which a stock
`SANAS(..., is_server=False)` sends bare, with nothing that says where they end (the server takes a
pause of the sender as the end):
  next_tokens                                   -> "3,1,4,..."       (a finished search: "search finished")
  current_info                                  -> str(dict) that the stock client eval()s
  KEY \t 1,2,3 \t REWARD \t ITER \t CLIENT      -> "ok"
ppnas's own clients frame every message, and the server frames its answer to them:
  b"ppnas1 " + the payload's length in bytes + b"\n" + the UTF-8 payload
so a message sent in slow pieces is read whole (up to the request timeout), and a cut-short one is known
for what it is. Their payloads (PaddleSlim's server ignores a 6th field):
  KEY \t 1,2,3 \t REWARD \t ITER \t CLIENT \t {CandidateRecord JSON}   a trained candidate, fully described
  KEY \t ppnas_record \t CLIENT \t {CandidateRecord JSON}              a rejected or failed candidate
  KEY \t ppnas_next \t CLIENT                   -> {"tokens": [...], "beat_seconds": S} | {"finished": true}
                                                   | {"wait": S} (every unseen neighbour is out: ask again)
  KEY \t ppnas_beat \t CLIENT \t 1,2,3          -> "ok" | "unknown"  (the candidate is still being trained)
  KEY \t ppnas_info                             -> controller info as JSON
Any refused request is answered "error \t <reason>"; a message cut short, "error \t incomplete message ...".
"""

import hmac
import json
import math
from dataclasses import dataclass, fields
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ppnas.history import CandidateRecord

NEXT_TOKENS = "next_tokens"
CURRENT_INFO = "current_info"
PPNAS_NEXT = "ppnas_next"
PPNAS_RECORD = "ppnas_record"
PPNAS_BEAT = "ppnas_beat"
PPNAS_INFO = "ppnas_info"
OK = "ok"
UNKNOWN = "unknown"
FINISHED_TEXT = "search finished"  # not integers: the stock client's next_tokens() ends by sys.exit()
ERROR = "error"
WRONG_KEY = "wrong key"
INCOMPLETE = "incomplete message"
FRAME = b"ppnas1 "  # begins every framed message; no stock message begins so (they start with a key or a verb)
MAX_LENGTH_DIGITS = 10
MAX_CLIENT_NAME = 128
RECORD_FIELDS = {f.name for f in fields(CandidateRecord)}


class ProtocolError(ValueError):
    """A request that must be refused; the message says why (it goes back to the sender and the log)."""


class IncompleteFrame(Exception):
    """A framed message ended before its declared length."""


# --- framing --------------------------------------------------------------------------------------
def frame(text: str) -> bytes:
    payload = text.encode("utf-8")
    return FRAME + str(len(payload)).encode("ascii") + b"\n" + payload


def frame_length(buf: bytes) -> Optional[Tuple[int, int]]:
    """(payload length, where the payload starts) of a framed message, None until its header is whole."""
    newline = buf.find(b"\n", len(FRAME))
    if newline < 0:
        if len(buf) > len(FRAME) + MAX_LENGTH_DIGITS:
            raise ProtocolError("the frame header has no length")
        return None
    digits = bytes(buf[len(FRAME) : newline])
    if not digits.isdigit() or len(digits) > MAX_LENGTH_DIGITS:
        raise ProtocolError("the frame header has no length")
    return int(digits), newline + 1


def may_be_framed(buf: bytes) -> bool:
    """Whether `buf` is, or may still become, the start of a framed message."""
    return bytes(buf[: len(FRAME)]) == FRAME[: min(len(buf), len(FRAME))]


def unframe(data: bytes) -> str:
    """The payload of one framed answer; IncompleteFrame when it was cut short."""
    if not data.startswith(FRAME):
        raise IncompleteFrame("the answer is not framed")
    try:
        header = frame_length(data)
    except ProtocolError as err:
        raise IncompleteFrame(str(err)) from None
    if header is None or len(data) < header[1] + header[0]:
        raise IncompleteFrame(f"the answer ended after {len(data)} bytes")
    length, start = header
    return data[start : start + length].decode("utf-8")


@dataclass
class NextTokens:
    client: Optional[str]  # None: a stock client, which does not say who it is


@dataclass
class CurrentInfo:
    as_json: bool


@dataclass
class Reward:
    tokens: List[int]
    reward: float
    iter: int
    client: str
    record: Optional[CandidateRecord]  # None: a stock client's 5-field message


@dataclass
class Record:
    client: str
    record: CandidateRecord


@dataclass
class Beat:
    client: str
    tokens: List[int]


Request = Union[NextTokens, CurrentInfo, Reward, Record, Beat]


# --- encoding (client side) -----------------------------------------------------------------------
def tokens_text(tokens: Sequence[int]) -> str:
    return ",".join(str(int(t)) for t in tokens)


def reward_message(key: str, tokens: Sequence[int], reward: float, step: int, client: str, record: Dict) -> str:
    return "\t".join([key, tokens_text(tokens), repr(float(reward)), str(int(step)), client, json.dumps(record)])


def record_message(key: str, client: str, record: Dict) -> str:
    return "\t".join([key, PPNAS_RECORD, client, json.dumps(record)])


def next_message(key: str, client: str) -> str:
    return f"{key}\t{PPNAS_NEXT}\t{client}"


def beat_message(key: str, client: str, tokens: Sequence[int]) -> str:
    return f"{key}\t{PPNAS_BEAT}\t{client}\t{tokens_text(tokens)}"


def info_message(key: str) -> str:
    return f"{key}\t{PPNAS_INFO}"


def error_reply(reason: str) -> str:
    return f"{ERROR}\t{reason}"


def parse_error_reply(reply: str) -> Optional[str]:
    """The reason of an error reply, or None when the reply is not an error."""
    if reply.startswith(ERROR + "\t"):
        return reply.split("\t", 1)[1]
    return None


# --- parsing (server side) ------------------------------------------------------------------------
def parse_tokens(text: str, range_table: Sequence[int]) -> List[int]:
    parts = text.split(",")
    if len(parts) != len(range_table):
        raise ProtocolError(f"expected {len(range_table)} tokens, got {len(parts)}")
    tokens = []
    for part, upper in zip(parts, range_table):
        value = _integer(part, "token")
        if not 0 <= value < upper:
            raise ProtocolError(f"token {value} is outside [0, {upper - 1}]")
        tokens.append(value)
    return tokens


def _integer(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise ProtocolError(f"{what} {text[:20]!r} is not a non-negative integer")
    return int(text)


def _parse_client(text: str) -> str:
    if not text or len(text) > MAX_CLIENT_NAME or not text.isprintable():
        raise ProtocolError("the client name must be 1 to 128 printable characters")
    return text


def _parse_record(text: str, tokens: Optional[List[int]], client: str, range_table: Sequence[int]) -> CandidateRecord:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise ProtocolError("the record is not JSON") from None
    if not isinstance(data, dict) or not set(data) <= RECORD_FIELDS or "tokens" not in data or "status" not in data:
        raise ProtocolError("the record is not a CandidateRecord object")
    if not isinstance(data["tokens"], list):
        raise ProtocolError("the record's tokens are not a list")
    record_tokens = parse_tokens(",".join(str(t) for t in data["tokens"]), range_table)
    if tokens is not None and record_tokens != tokens:
        raise ProtocolError("the record's tokens differ from the message's")
    try:
        record = CandidateRecord(**data)
    except (TypeError, ValueError) as err:
        raise ProtocolError(f"the record is not a CandidateRecord: {err}") from None
    record.client = client
    return record


def _parse_reward(parts: List[str], range_table: Sequence[int]) -> Reward:
    tokens = parse_tokens(parts[1], range_table)
    try:
        reward = float(parts[2])
    except ValueError:
        raise ProtocolError(f"reward {parts[2][:20]!r} is not a number") from None
    if not math.isfinite(reward):
        raise ProtocolError(f"reward {reward} is not finite")
    iteration = _integer(parts[3], "iteration")
    client = _parse_client(parts[4])
    record = None
    if len(parts) == 6:
        record = _parse_record(parts[5], tokens, client, range_table)
        if record.status != "trained" or record.reward != reward:
            raise ProtocolError("a reward's record must be 'trained' with the same reward")
    return Reward(tokens=tokens, reward=reward, iter=iteration, client=client, record=record)


def parse_request(text: str, framed: bool, key: str, stock_allowed: bool, range_table: Sequence[int]) -> Request:
    """Parse one request. `framed`: it came framed, as every ppnas request must (a bare one is PaddleSlim's).
    `stock_allowed`: the key is PaddleSlim's own, so keyless stock requests count."""
    if text in (NEXT_TOKENS, CURRENT_INFO) and not framed:
        if not stock_allowed:
            raise ProtocolError("this server has a secret key: PaddleSlim's keyless requests are refused")
        return NextTokens(client=None) if text == NEXT_TOKENS else CurrentInfo(as_json=False)
    parts = text.split("\t")
    if len(parts) < 2 or len(parts) > 6:
        raise ProtocolError("not a controller request")
    if not _same_key(parts[0], key):
        raise ProtocolError(WRONG_KEY)
    verb = parts[1]
    ppnas = verb.startswith("ppnas_") or len(parts) == 6
    if ppnas != framed:
        raise ProtocolError("ppnas requests are framed, PaddleSlim's are not" if ppnas else "not a ppnas request")
    if verb == PPNAS_INFO and len(parts) == 2:
        return CurrentInfo(as_json=True)
    if verb == PPNAS_NEXT and len(parts) == 3:
        return NextTokens(client=_parse_client(parts[2]))
    if verb == PPNAS_BEAT and len(parts) == 4:
        return Beat(client=_parse_client(parts[2]), tokens=parse_tokens(parts[3], range_table))
    if verb == PPNAS_RECORD and len(parts) == 4:
        client = _parse_client(parts[2])
        record = _parse_record(parts[3], None, client, range_table)
        if record.status == "trained":
            raise ProtocolError("a trained candidate is reported with its reward, not as a record")
        return Record(client=client, record=record)
    if len(parts) in (5, 6):
        return _parse_reward(parts, range_table)
    raise ProtocolError("not a controller request")


def _same_key(given: str, key: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), key.encode("utf-8"))


def stock_info_text(info: Dict[str, Any]) -> str:
    """PaddleSlim's current_info answer: a Python literal the stock client eval()s."""
    return str(
        {
            "best_tokens": info["best_tokens"],
            "best_reward": info["best_reward"],
            "current_tokens": info["current_tokens"],
        }
    )
