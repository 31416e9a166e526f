"""An FBNet epoch line prints the expected price and the subnet's in one unit, and the NME's normaliser."""

import ppnas  # noqa: F401  # isort: skip
from ppnas.fbnet.search import epoch_line

RECORD = {"epoch": 3, "phase": "search", "nme": 0.1234, "nme_norm": "eyes", "temperature": 4.3}


def test_flops_mode_prints_both_prices_in_flops_and_table_mode_both_in_ms():
    flops = {
        **RECORD,
        "expected_latency": 7.418,
        "expected_searched": 2.5,
        "latency_unit": "MFLOPs",
        "predicted": 6.803e6,
        "predicted_ms": None,
    }
    assert epoch_line(flops, 12) == (
        "epoch 3/12 search: test NME 0.1234 (eyes), expected latency 7.42M FLOPs (searched part 2.5M FLOPs), "
        "T 4.300, subnet 6.8M FLOPs"
    )
    table = {
        **RECORD,
        "expected_latency": 5.2,
        "expected_searched": 1.25,
        "latency_unit": "ms",
        "predicted": 4900.0,
        "predicted_ms": 4.9,
    }
    assert epoch_line(table, 12).endswith("expected latency 5.20 ms (searched part 1.25 ms), T 4.300, subnet 4.90 ms")
