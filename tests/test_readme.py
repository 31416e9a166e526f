"""What a new user reads in the README: commands that work from a fresh clone, numbers that match the results."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import importlib.util
import json
import shlex

import pytest
from conftest import ROOT

from ppnas.tasks.detection import FULL_CONFIG_SUFFIX, STOCK_FACE_BASES

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_latency_commands_use_the_shipped_table_and_say_where_it_comes_from():
    commands = [line for line in README.splitlines() if line.startswith("python tools/latency.py")]
    assert len(commands) == 2 and all("--table configs/latency_855.txt" in line for line in commands)
    assert "../shared" not in README and "this workspace" not in README
    latency_section = README.split("## Latency tables", 1)[1].split("\n## ", 1)[0]
    assert (
        "`configs/latency_855.txt` is the Snapdragon 855 table (Paddle-Lite, microseconds) of the original\n"
        "PaddleDetection BlazeFace NAS example" in latency_section
    )


def test_readme_latency_command_runs_as_printed(monkeypatch, capsys):
    (command,) = [
        line for line in README.splitlines() if line.startswith("python tools/latency.py") and "--tokens" in line
    ]
    monkeypatch.chdir(ROOT)
    spec = importlib.util.spec_from_file_location("latency_tool", ROOT / "tools" / "latency.py" / "__main__.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main(shlex.split(command)[2:]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["table"] == str(ROOT / "configs" / "latency_855.txt") and result["latency_ms"] > 0


def test_full_training_command_is_the_stock_layout():
    block = README.split("complete PaddleDetection 2.x config", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    copy, train = block.strip().splitlines()
    assert copy.startswith("cp ") and copy.endswith(f"blazeface_nas{FULL_CONFIG_SUFFIX} configs/face_detection/")
    assert train == f"python tools/train.py -c configs/face_detection/blazeface_nas{FULL_CONFIG_SUFFIX}"
    assert "configs/face_detection/blazeface_1000e.yml" in README and len(STOCK_FACE_BASES) == 5


def test_latency_accuracy_table_shows_the_benchmark_result():
    """The README's accuracy table: one row per engine and space, the numbers of bench/results/latency_accuracy.json."""
    results = json.loads((ROOT / "bench" / "results" / "latency_accuracy.json").read_text())["results"]
    rows = {}
    for line in README.split("## Latency tables", 1)[1].split("\n## ", 1)[0].splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 7:
            rows[(cells[0].strip("`"), cells[1].strip("`"))] = cells[2:]
    assert set(rows) == {(engine, space) for engine in results for space in results[engine]}
    for (engine, space), cells in rows.items():
        result = results[engine][space]
        shown = [float(cell.rstrip("%")) for cell in cells]
        expected = [
            100 * result["within_10pct"],
            result["median_abs_error_pct"],
            result["max_abs_error_pct"],
            100 * result["flops_within_10pct"],
            result["flops_median_abs_error_pct"],
        ]
        assert shown == pytest.approx(expected, abs=0.051), (engine, space)
