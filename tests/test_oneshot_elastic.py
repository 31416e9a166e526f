"""The BlazeFace supernet with elastic depth and input resolution: subnets equal PaddleDetection's BlazeFace with the
sliced weights (blocks renumbered), the search prices each subnet at its own resolution, a supernet trained for
another space is refused."""

import ppnas  # noqa: F401  # isort: skip
import random

import numpy as np
import paddle
from oneshot_helpers import BIGNAS_DEMO, run_bignas, trained_config, with_supernet

from latency.flops import count_flops
from ppnas.history import History
from ppnas.oneshot.export import subnet_state_dict
from ppnas.oneshot.settings import load_oneshot_config
from ppnas.oneshot.supernet import build_supernet
from ppnas.tasks.detection import BlazeFaceForward, build_blazeface

DEPTH = "space={backbone: {depth: {space: {min: [1, 1, 2, 2], max: [2, 3, 2, 2]}}}}"
ELASTIC = {
    "space": {"backbone": {"depth": {"space": {"min": [1, 1, 2, 2], "max": [2, 3, 2, 2]}}}},
    "image_size_list": [48, 64],
}


def test_deeper_and_shallower_subnets_equal_paddledetection_blazeface_at_their_resolution():
    paddle.seed(0)
    cfg = load_oneshot_config(str(BIGNAS_DEMO), ["kernel_choices=[3,5]", DEPTH, "image_size_list=[64, 96]"])
    supernet = build_supernet(cfg)
    rng = random.Random(4)
    depths = set()
    for _ in range(3):
        subnet = supernet.space.decode([rng.randrange(n) for n in supernet.space.range_table()])
        depths.add(tuple(subnet.settings["backbone"]["depth"]))
        supernet.set_subnet(subnet)
        image = paddle.randn([2, 3, *subnet.image_size[2:]])
        supernet.train()
        supernet.head_outputs(image)
        supernet.eval()
        model = supernet.plain_model(subnet)
        model.set_state_dict(subnet_state_dict(supernet, model, subnet))  # every key, shapes checked
        model.eval()
        scores = paddle.concat(supernet.head_outputs(image)[1], axis=1).numpy()
        outs = BlazeFaceForward(model)(image)
        flat = [paddle.reshape(paddle.transpose(o, [0, 2, 3, 1]), [0, -1, 2]) for o in outs[1::2]]
        np.testing.assert_allclose(scores, paddle.concat(flat, axis=1).numpy(), atol=1e-5)
    assert len(depths) > 1


def test_search_prices_each_subnet_at_its_resolution_and_refuses_another_space(capsys, tmp_path, tiny_wider):
    trained = trained_config(tmp_path / "supernet", tiny_wider, **ELASTIC)["save_dir"]
    config = with_supernet(trained, tmp_path / "search", tiny_wider, subnet_count=4, **ELASTIC)
    code, out, err = run_bignas(capsys, "-c", str(config), "--phase", "search", "--quiet")
    assert code == 0, err
    records = History.in_dir(str(tmp_path / "search" / "out")).trained()
    cfg = load_oneshot_config(str(config))
    sizes = set()
    for record in records:
        shape = record["structure"]["image_size"]
        sizes.add(shape[-1])
        model = BlazeFaceForward(build_blazeface(record["structure"], cfg))
        assert record["flops"] == count_flops(model, shape)  # measured at the subnet's own size
        assert 0 <= record["reward"] <= 1
    assert sizes == {48, 64}
    code, _, err = run_bignas(
        capsys,
        "-c",
        str(config),
        "--phase",
        "search",
        "-o",
        "image_size_list=[64]",
        f"save_dir={tmp_path / 'x'}",
        f"supernet_dir={trained}",
    )
    assert code == 2 and "was trained with space.image_size_list [[1, 3, 48, 48], [1, 3, 64, 64]], " in err
