"""BlazeFaceNasSpace: value lists, decoding, token checks, registry, and a real model from the tokens."""

import ppnas  # noqa: F401  # isort: skip
import paddle
import pytest
from conftest import ROOT
from paddleslim.nas.search_space import SEARCHSPACE
from paddleslim.nas.search_space.search_space_factory import SearchSpaceFactory

from ppnas.config import load_config
from ppnas.errors import SearchSpaceError
from ppnas.spaces import build_space, registered_spaces
from ppnas.tasks.detection import BlazeFaceForward, build_blazeface, out_channels
from search_space.blazeface import BlazeFaceNasSpace

PUBLISHED_NAS = {
    "blaze_filters": [[12, 12], [12, 12, 2], [12, 12]],
    "double_blaze_filters": [[12, 16, 24, 2], [24, 12, 24], [24, 16, 72, 2], [72, 12, 72]],
}


@pytest.mark.parametrize("kernels, use_5x5", [([3, 5], True), ([3], False)])
def test_init_tokens_decode_to_published_blazeface_nas(kernels, use_5x5):
    space = BlazeFaceNasSpace(kernel_choices=kernels)
    structure = space.token2arch(space.init_tokens())[0]
    assert {k: structure[k] for k in PUBLISHED_NAS} == PUBLISHED_NAS
    assert structure["use_5x5kernel"] is use_5x5
    assert out_channels(structure) == [24, 72]


def test_range_tables_of_both_variants():
    assert BlazeFaceNasSpace().range_table() == [7, 9, 12, 12, 6, 6, 6, 6, 2]
    assert BlazeFaceNasSpace(kernel_choices=[3]).range_table() == [6, 8, 12, 12, 6, 6, 6, 6, 1]


def test_decoding_rule_on_last_tokens():
    space = BlazeFaceNasSpace()
    structure = space.decode([6, 8, 11, 10, 5, 4, 3, 0, 0])
    assert structure["blaze_filters"] == [[32, 32], [32, 64, 2], [64, 64]]
    assert structure["double_blaze_filters"] == [[64, 32, 96, 2], [96, 24, 96], [96, 20, 88, 2], [88, 8, 88]]
    assert structure["use_5x5kernel"] is False


def test_3x3_variant_has_no_20_channel_option():
    space = BlazeFaceNasSpace(kernel_choices=[3])
    firsts = {space.decode([i, 0, 0, 0, 0, 0, 0, 0, 0])["blaze_filters"][0][0] for i in range(6)}
    seconds = {space.decode([0, i, 0, 0, 0, 0, 0, 0, 0])["blaze_filters"][2][0] for i in range(8)}
    assert 20 not in firsts and 20 not in seconds
    assert firsts == {4, 8, 12, 16, 24, 32}


@pytest.mark.parametrize(
    "tokens, message",
    [
        ([0] * 8, "takes 9 tokens, got 8"),
        ([7, 0, 0, 0, 0, 0, 0, 0, 0], "token 0 = 7 is out of range: it must be in [0, 6]"),
        ([0, 0, 0, 0, 0, 0, 0, 0, -1], "token 8 = -1 is out of range"),
        ([0, 0, 0.5, 0, 0, 0, 0, 0, 0], "token 2 must be an integer"),
    ],
)
def test_bad_tokens_get_a_clear_error(tokens, message):
    with pytest.raises(SearchSpaceError, match=message.replace("[", r"\[").replace("]", r"\]")):
        BlazeFaceNasSpace().decode(tokens)


def test_unsupported_kernel_choices():
    with pytest.raises(SearchSpaceError, match=r"kernel_choices must be \[3, 5\] or \[3\]"):
        BlazeFaceNasSpace(kernel_choices=[5])


def test_registered_in_paddleslim_and_usable_by_its_factory():
    assert SEARCHSPACE.get("BlazeFaceNasSpace") is BlazeFaceNasSpace
    combined = SearchSpaceFactory().get_search_space(["BlazeFaceNasSpace"])  # how SANAS builds it
    assert combined.range_table() == [7, 9, 12, 12, 6, 6, 6, 6, 2]
    assert combined.init_tokens() == [2, 1, 3, 8, 2, 1, 2, 1, 1]


def test_unknown_space_lists_registered_ones():
    with pytest.raises(SearchSpaceError) as err:
        build_space("BlazeFaceSpace")
    assert "unknown search space 'BlazeFaceSpace'" in str(err.value)
    assert "BlazeFaceNasSpace" in str(err.value)
    assert "BlazeFaceNasSpace" in registered_spaces()


def test_tokens_build_a_ppdet_blazeface_with_matching_channels():
    space = BlazeFaceNasSpace(kernel_choices=[3])
    structure = space.decode([5, 7, 4, 9, 0, 1, 2, 3, 0])
    model = build_blazeface(structure, load_config(str(ROOT / "configs" / "_base_" / "blazeface_nas_model.yml")))
    outs = BlazeFaceForward(model)(paddle.zeros([1, 3, 64, 64]))
    # stride 8 and 16 maps, 2 and 6 anchors, 4 box values and 2 scores (face + background) per anchor
    assert [list(o.shape) for o in outs] == [[1, 8, 8, 8], [1, 4, 8, 8], [1, 24, 4, 4], [1, 12, 4, 4]]
    assert model.neck.out_shape[0].channels == 32 and model.neck.out_shape[1].channels == 80
