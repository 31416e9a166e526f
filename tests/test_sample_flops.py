"""`--phase sample_flops` measures the constraint only: no dataset, no supernet; it says how long it will take."""

import ppnas  # noqa: F401  # isort: skip
import json
import re

from oneshot_helpers import run_bignas, write_bignas_config


def test_sample_flops_needs_no_dataset_and_shows_its_count_and_an_eta(capsys, tmp_path):
    missing = tmp_path / "no_wider_face_here"
    config = write_bignas_config(tmp_path, missing, flops_samples=4)
    code, out, err = run_bignas(capsys, "-c", str(config), "--phase", "sample_flops")
    assert code == 0, err
    assert json.loads(out)["samples"] == 4 and not missing.exists()
    assert "sample_flops: measuring 4 random subnets (flops_samples) at 64 px" in err
    assert re.search(r"sample_flops: 1/4 subnets, ETA \d+:\d\d", err) and "sample_flops: 4/4 subnets\n" in err
