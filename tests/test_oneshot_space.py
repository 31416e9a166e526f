"""United-Perception's space declaration and its tokens: strategies, narrowing, subnet_settings, the BlazeFace and
DeepLabV3+ supernets' spaces equal BlazeFaceNasSpace's 9 tokens and MobileNetV2SpaceSeg's 25."""

import ppnas  # noqa: F401  # isort: skip
import random

import pytest
from oneshot_helpers import BIGNAS_DEMO

from ppnas.errors import ConfigError, SearchSpaceError
from ppnas.oneshot.settings import load_oneshot_config
from ppnas.oneshot.space import ElasticSpace, merge_declaration, resolve_image_sizes
from ppnas.oneshot.supernet import supernet_space
from ppnas.oneshot.supernets.deeplab import DeepLabV3PSupernet, arch_of
from ppnas.spaces import build_space

DECLARATION = {
    "backbone": {
        "out_channel": {"space": {"min": [8, 16], "max": [16, 32], "stride": 8}, "sample_strategy": "stage_wise"},
        "depth": {"space": {"min": [1, 1], "max": [2, 3], "stride": 1}, "sample_strategy": "stage_wise_depth"},
        "kernel_size": {"space": {"min": 3, "max": 5, "stride": 2}, "sample_strategy": "net_wise"},
        "expand_ratio": {"space": {"dynamic_range": [[1, 2, 3], [2, 4, 6]]}, "sample_strategy": "stage_wise_depth"},
        "group_num": {"space": {"dynamic_range": [[1, 2], [1, 2]]}, "sample_strategy": "block_wise"},
    }
}


def test_strategies_give_the_tokens_united_perception_samples():
    space = ElasticSpace(DECLARATION, [[1, 3, 32, 32], [1, 3, 64, 64]], token_order="dim")
    names = [(p.dim, p.stages, p.block) for p in space.positions]
    assert names == [
        ("out_channel", (0,), None),
        ("out_channel", (1,), None),
        ("depth", (0,), None),
        ("depth", (1,), None),
        ("kernel_size", (0, 1), None),  # net_wise: one token for every stage
        ("expand_ratio", (0,), None),  # stage 1's 3 values follow depth's 3 choices there: no token
        ("group_num", (0,), 0),
        ("group_num", (0,), 1),
        ("group_num", (1,), 0),
        ("group_num", (1,), 1),
        ("group_num", (1,), 2),  # block_wise: one token per block up to the stage's largest depth
    ]
    assert space.range_table() == [2, 3, 2, 3, 2, 3, 2, 2, 2, 2, 2, 2]  # the resolution comes last
    subnet = space.decode([1, 0, 0, 2, 1, 0, 1, 0, 0, 1, 1, 0])
    settings = subnet.settings["backbone"]
    assert settings["out_channel"] == [16, 16] and settings["depth"] == [1, 3] and settings["kernel_size"] == [5, 5]
    assert settings["expand_ratio"] == [1, 6]  # stage 1: depth's index 2 -> 6 (stage_wise_depth)
    assert settings["group_num"] == [[2, 1], [1, 2, 2]] and subnet.image_size == [1, 3, 32, 32]
    stage_major = ElasticSpace(DECLARATION, [[1, 3, 32, 32]], token_order="stage")
    assert [p.stages[0] for p in stage_major.positions] == [0] * 6 + [1] * 5


def test_settings_round_trip_partial_settings_take_the_largest_and_bad_values_are_named():
    space = ElasticSpace(DECLARATION, [[1, 3, 32, 32], [1, 3, 64, 64]])
    rng = random.Random(0)
    for _ in range(20):
        tokens = [rng.randrange(n) for n in space.range_table()]
        subnet = space.decode(tokens)
        assert space.decode(space.encode(subnet.settings, subnet.image_size)).settings == subnet.settings
    partial = space.decode(space.encode({"backbone": {"depth": [2, 1], "expand_ratio": [3, 2]}}))
    assert partial.settings["backbone"]["out_channel"] == [16, 32] and partial.image_size == [1, 3, 64, 64]
    with pytest.raises(ConfigError, match=r"subnet_settings.backbone.out_channel\[0\] = 12 is not in this space"):
        space.encode({"backbone": {"out_channel": [12, 16]}})
    with pytest.raises(ConfigError, match="no dimension 'width'; the dimensions are out_channel, depth"):
        space.encode({"backbone": {"width": [1, 2]}})
    with pytest.raises(ConfigError, match="is not a subnet of this space"):  # expand_ratio is tied to depth there
        space.encode({"backbone": {"depth": [1, 3], "expand_ratio": [3, 2]}})
    with pytest.raises(SearchSpaceError, match="the space takes 12 tokens, got 3"):
        space.decode([0, 0, 0])


def test_declaration_errors_and_image_sizes():
    with pytest.raises(ConfigError, match="sample_strategy must be one of net_wise, stage_wise"):
        ElasticSpace({"b": {"depth": {"space": {"min": 1, "max": 2}, "sample_strategy": "layer_wise"}}}, [[1, 3, 8, 8]])
    with pytest.raises(ConfigError, match="space.b: out_channel has 2 stages, other dimensions have 3"):
        ElasticSpace({"b": {"depth": [1, 1, 1], "out_channel": [8, 8]}}, [[1, 3, 8, 8]])
    with pytest.raises(ConfigError, match="min 4 is larger than max 2"):
        ElasticSpace({"b": {"depth": {"space": {"min": 4, "max": 2}}}}, [[1, 3, 8, 8]])
    with pytest.raises(ConfigError, match="the supernet has no dimension 'width'"):
        merge_declaration(DECLARATION, {"backbone": {"width": [8, 8]}}, "space")
    narrowed = merge_declaration(DECLARATION, {"backbone": {"expand_ratio": {"space": {"max": [1, 4]}}}}, "space")
    assert ElasticSpace(narrowed, [[1, 3, 8, 8]]).declaration["backbone"]["expand_ratio"]["dynamic_range"] == [
        [1],
        [2, 4],
    ]
    assert resolve_image_sizes({"min": 128, "max": 640, "stride": 32}, [1, 3, 160, 160])[::8] == [
        [1, 3, 128, 128],
        [1, 3, 384, 384],
        [1, 3, 640, 640],
    ]
    assert resolve_image_sizes([[1, 3, 96, 128], 64], [1, 3, 8, 8]) == [[1, 3, 64, 64], [1, 3, 96, 128]]


@pytest.mark.parametrize("kernel_choices", [[3], [3, 5]])
def test_the_blazeface_space_is_blazefacenasspace_and_depth_and_resolution_follow(kernel_choices):
    cfg = load_oneshot_config(str(BIGNAS_DEMO), [f"kernel_choices={kernel_choices}"])
    space, nas = supernet_space(cfg), build_space("BlazeFaceNasSpace", kernel_choices=kernel_choices)
    from ppnas.oneshot.supernets.blazeface import blazenet_structure

    assert space.range_table() == nas.range_table() and space.init_tokens() == nas.init_tokens()
    rng = random.Random(1)
    for _ in range(30):
        tokens = [rng.randrange(n) for n in nas.range_table()]
        assert blazenet_structure(space.decode(tokens).settings) == nas.decode(tokens)
    extended = load_oneshot_config(
        str(BIGNAS_DEMO),
        [
            f"kernel_choices={kernel_choices}",
            "space={backbone: {depth: {space: {min: [1, 1, 2, 2], max: [2, 3, 2, 2]}}}}",
            "image_size_list={min: 96, max: 160, stride: 32}",
        ],
    )
    wide = supernet_space(extended)
    assert wide.range_table() == nas.range_table() + [2, 3, 3]  # depth of the blaze stages, then the resolution
    nine = [2, 1, 3, 8, 2, 1, 2, 1, 0]
    old = wide.decode(nine + [0, 1, 2])  # depth [1, 2] at 160 px: a 9-token structure is a subnet
    assert blazenet_structure(old.settings) == nas.decode(nine) and old.image_size == [1, 3, 160, 160]
    assert wide.init_tokens() == nas.init_tokens() + [0, 1, 2]
    deep = blazenet_structure(wide.decode(nine + [1, 2, 0]).settings)
    assert len(deep["blaze_filters"]) == 5 and deep["double_blaze_filters"] == nas.decode(nine)["double_blaze_filters"]
    with pytest.raises(ConfigError, match="the double-blaze stages exactly 2"):
        supernet_space({**extended, "space": {"backbone": {"depth": {"space": {"max": [1, 2, 3, 2]}}}}})


def test_the_deeplab_space_is_mobilenetv2spaceseg():
    seg_space = build_space("MobileNetV2SpaceSeg")
    cfg = {"search_space": "MobileNetV2SpaceSeg", "input_shape": [1, 3, 64, 64], "space": None}
    from ppnas.oneshot.supernet import build_space as build_elastic

    space = build_elastic(DeepLabV3PSupernet, cfg)
    assert space.range_table() == seg_space.range_table() and space.init_tokens() == seg_space.init_tokens()
    rng = random.Random(2)
    for _ in range(30):
        tokens = [rng.randrange(n) for n in seg_space.range_table()]
        assert arch_of(space.decode(tokens).settings, 16) == seg_space.token2arch(tokens)[0]
    shallow = {"backbone": {"depth": {"space": {"max": [1] + [3] * 6}}}}
    lower = build_elastic(DeepLabV3PSupernet, {**cfg, "space": shallow})
    assert lower.range_table()[3] == 3  # a lowered max keeps MobileNetV2SpaceSeg's indices: [1, 2, 3]
    tokens = [min(t, n - 1) for t, n in zip(seg_space.init_tokens(), lower.range_table())]
    assert arch_of(lower.decode(tokens).settings, 16) == seg_space.token2arch(tokens)[0]
    with pytest.raises(ConfigError, match="stage 0 is MobileNetV2's head block"):
        build_elastic(DeepLabV3PSupernet, {**cfg, "space": {"backbone": {"depth": {"space": {"max": 3}}}}})
