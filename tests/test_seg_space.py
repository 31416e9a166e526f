"""MobileNetV2SpaceSeg: token decoding and the backbone inside PaddleSeg's DeepLabV3P."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import paddle
import pytest
from paddleseg.models import DeepLabV3P

import search_space  # noqa: F401  # registers MobileNetV2SpaceSeg
from ppnas.errors import SearchSpaceError
from ppnas.spaces import build_space
from search_space.mobilenetv2_seg import MobileNetV2SegArch

STOCK_BLOCKS = [(6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3), (6, 160, 3), (6, 320, 1)]  # MobileNetV2 (t, c, n)


@pytest.fixture(scope="module")
def space():
    return build_space("MobileNetV2SpaceSeg")


def test_init_tokens_decode_to_stock_mobilenetv2(space):
    tokens = space.init_tokens()
    assert len(tokens) == 25
    assert tokens == [4, 4, 5, 1, 0, 4, 4, 2, 0, 4, 4, 3, 0, 4, 5, 2, 0, 4, 7, 2, 0, 4, 9, 0, 0]
    structure = space.token2arch(tokens)[0].to_dict()
    assert structure["head_channels"] == 16
    assert [(b["t"], b["c"], b["n"]) for b in structure["blocks"]] == STOCK_BLOCKS
    assert [b["k"] for b in structure["blocks"]] == [3] * 6
    # fixed strides 2, 2, 2, 1, 2, 1 with block 5's stride-2 turned into 1 for output stride 16
    assert [b["stride"] for b in structure["blocks"]] == [2, 2, 2, 1, 1, 1]
    assert structure["feat_channels"] == [24 * 6, 32, 96, 320]  # block 1's last depthwise: 24 in x t=6
    assert structure["backbone_indices"] == [0, 3]


def test_range_table_and_value_lists(space):
    assert space.range_table() == [7, 5, 8, 6, 2, 5, 8, 6, 2, 5, 8, 6, 2, 5, 10, 6, 2, 5, 10, 6, 2, 5, 12, 6, 2]
    top = [r - 1 for r in space.range_table()]
    arch = space.token2arch(top)[0]
    assert arch.head_channels == 32
    assert arch.blocks == ((6, 48, 6, 5), (6, 80, 6, 5), (6, 128, 6, 5), (6, 192, 6, 5), (6, 224, 6, 5), (6, 512, 6, 5))
    low = space.token2arch([0] * 25)[0]
    assert low.head_channels == 3 and low.blocks[0] == (1, 3, 1, 3) and low.blocks[5] == (1, 64, 1, 3)
    assert MobileNetV2SegArch.from_dict(arch.to_dict()) == arch


@pytest.mark.parametrize(
    "tokens, message",
    [
        ([4] * 24, "takes 25 tokens, got 24"),
        ([7] + [0] * 24, "token 0 = 7 is out of range"),
        ([0] * 24 + [2], "token 24 = 2 is out of range"),
        ([0] * 24 + [-1], "token 24 = -1 is out of range"),
    ],
)
def test_bad_tokens_are_rejected(space, tokens, message):
    with pytest.raises(SearchSpaceError, match=message):
        space.token2arch(tokens)


def test_backbone_in_deeplabv3p_forward_shapes(space):
    # block 1: t=2, n=1 (shortcut = depthwise of the head's 16 channels x 2), k=5 in block 3
    tokens = list(space.init_tokens())
    tokens[1:5] = [1, 5, 0, 0]
    tokens[12] = 1
    arch = space.token2arch(tokens)[0]
    assert arch.blocks[0] == (2, 24, 1, 3) and arch.blocks[2][3] == 5
    backbone = arch.build_backbone()
    assert backbone.feat_channels == [32, 32, 96, 320]
    model = DeepLabV3P(num_classes=5, backbone=backbone, backbone_indices=arch.backbone_indices)
    model.eval()
    x = paddle.rand([2, 3, 64, 96])
    feats = backbone(x)
    assert [tuple(f.shape) for f in feats] == [(2, 32, 16, 24), (2, 32, 8, 12), (2, 96, 4, 6), (2, 320, 4, 6)]
    assert tuple(model(x)[0].shape) == (2, 5, 64, 96)
    # a second candidate in the same process (PaddleSeg's layers name their parameters)
    assert len(arch.build_backbone().parameters()) == len(backbone.parameters())
