"""A wrong --phase is one `error:` line naming the value and the valid phases (tools/bignas.py: test_oneshot_cli)."""

import ppnas  # noqa: F401  # isort: skip
from conftest import ROOT, run_tool


def test_a_wrong_fbnet_phase_names_the_value_and_the_phases_without_usage(capsys):
    code, out, err = run_tool(
        capsys, "fbnet", "-c", str(ROOT / "configs/demo/pfld_fbnet_demo.yml"), "--phase", "serach"
    )
    assert code == 2 and out == ""
    assert err == "error: unknown --phase 'serach'; choose one of build_lut, search, retrain, export, baseline\n"
