"""BlazeFaceNasSpace: the 9-token BlazeFace space of PaddleDetection's NAS example.

Tokens: [num1, num2, double1, double2, mid0, mid1, mid2, mid3, kernel]. Two value-list variants:
- kernel_choices [3, 5] (default, the original): 20 channels allowed, token 8 picks 3x3 or 5x5;
- kernel_choices [3] (the 2022 fix): no 20 in the first two lists and 3x3 only, because latency_855.txt
  has no key for them.
"""

from typing import Any, Dict, List, Optional, Sequence

from paddleslim.nas.search_space import SEARCHSPACE
from paddleslim.nas.search_space.search_space_base import SearchSpaceBase

from ppnas.errors import SearchSpaceError
from search_space.tokens import check_tokens

BLAZE_FILTER_NUM1 = [4, 8, 12, 16, 20, 24, 32]
BLAZE_FILTER_NUM2 = [8, 12, 16, 20, 24, 32, 40, 48, 64]
MID_FILTER_NUM = [8, 12, 16, 20, 24, 32]
DOUBLE_FILTER_NUM = [8, 12, 16, 24, 32, 40, 48, 64, 72, 80, 88, 96]
INIT_TOKENS = [2, 1, 3, 8, 2, 1, 2, 1, 1]


@SEARCHSPACE.register
class BlazeFaceNasSpace(SearchSpaceBase):
    def __init__(
        self,
        input_size: Optional[int] = None,
        output_size: Optional[int] = None,
        block_num: Optional[int] = None,
        block_mask: Optional[list] = None,
        kernel_choices: Sequence[int] = (3, 5),
    ) -> None:
        super().__init__(input_size, output_size, block_num, block_mask)
        kernel_choices = [int(k) for k in kernel_choices]
        if kernel_choices == [3, 5]:
            self.num1, self.num2, self.use_5x5 = BLAZE_FILTER_NUM1, BLAZE_FILTER_NUM2, [0, 1]
        elif kernel_choices == [3]:
            self.num1 = [c for c in BLAZE_FILTER_NUM1 if c != 20]
            self.num2 = [c for c in BLAZE_FILTER_NUM2 if c != 20]
            self.use_5x5 = [0]
        else:
            raise SearchSpaceError(f"kernel_choices must be [3, 5] or [3], got {list(kernel_choices)}")
        self.kernel_choices = kernel_choices

    def init_tokens(self) -> List[int]:
        tokens = list(INIT_TOKENS)
        if self.kernel_choices == [3]:
            tokens[8] = 0  # 3x3 only: the one remaining choice; channel indices are below 20's slot
        return tokens

    def range_table(self) -> List[int]:
        mids = [len(MID_FILTER_NUM)] * 4
        return [
            len(self.num1),
            len(self.num2),
            len(DOUBLE_FILTER_NUM),
            len(DOUBLE_FILTER_NUM),
            *mids,
            len(self.use_5x5),
        ]

    def decode(self, tokens: Sequence[int]) -> Dict[str, Any]:
        """Exactly the keyword arguments of PaddleDetection 2.x `BlazeNet` that the tokens choose."""
        t = check_tokens(list(tokens), self.range_table(), type(self).__name__)
        b1, b2 = self.num1[t[0]], self.num2[t[1]]
        d1, d2 = DOUBLE_FILTER_NUM[t[2]], DOUBLE_FILTER_NUM[t[3]]
        m = [MID_FILTER_NUM[i] for i in t[4:8]]
        return dict(
            blaze_filters=[[b1, b1], [b1, b2, 2], [b2, b2]],
            double_blaze_filters=[[b2, m[0], d1, 2], [d1, m[1], d1], [d1, m[2], d2, 2], [d2, m[3], d2]],
            use_5x5kernel=bool(self.use_5x5[t[8]]),
        )

    def token2arch(self, tokens: Optional[Sequence[int]] = None) -> List[Dict[str, Any]]:
        """PaddleSlim's contract: a list of arch objects; ours is the BlazeNet keyword dict."""
        return [self.decode(self.init_tokens() if tokens is None else tokens)]
