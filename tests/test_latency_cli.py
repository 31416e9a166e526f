"""tools/latency.py end to end (a subprocess, as a user runs it): one JSON object, or a one-line error."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest

from ppnas.errors import SearchSpaceError

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "configs" / "demo" / "blazeface_demo.yml"
PUBLISHED = "2,1,3,8,2,1,2,1,0"  # BlazeFace-NAS in the 3x3 space


def run(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "latency.py"), "-c", str(DEMO_CONFIG), *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
    )


def load_cli():
    """tools/latency.py as a module (under another name than the latency package)."""
    spec = importlib.util.spec_from_file_location("latency_cli", ROOT / "tools" / "latency.py" / "__main__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prints_one_json_object(tmp_path, latency_855_path):
    proc = run("--tokens", PUBLISHED, "--table", str(latency_855_path), "--input-size", "640", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 1  # one JSON object and nothing else on stdout
    out = json.loads(proc.stdout)
    assert out["latency_ms"] == pytest.approx(21.117)
    assert out["num_ops"] == 41 and out["missing_keys"] == []
    assert out["params"] == 40740 and out["flops"] > 1e8
    assert out["unpriced_ops"]["batch_norm"] == 37  # a conv-only table prices convs only


def test_missing_keys_are_a_one_line_error(latency_855_path):
    proc = run("--tokens", PUBLISHED, "--table", str(latency_855_path))  # demo input size 160: not in the table
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "lacks 22 op key(s)" in lines[-1] and "Traceback" not in proc.stderr


def test_a_published_structure_prices_like_its_tokens(tmp_path, latency_855_path):
    fragment = tmp_path / "blazeface_nas.yml"
    fragment.write_text(
        "BlazeNet:\n"
        "  blaze_filters: [[12, 12], [12, 12, 2], [12, 12]]\n"
        "  double_blaze_filters: [[12, 16, 24, 2], [24, 12, 24], [24, 16, 72, 2], [72, 12, 72]]\n"
        "  use_5x5kernel: false\n",
        encoding="utf-8",
    )
    cli = load_cli()
    common = ["-c", str(DEMO_CONFIG), "--table", str(latency_855_path), "--input-size", "640"]
    by_tokens = cli.price(cli.parse_args([*common, "--tokens", PUBLISHED]))
    by_structure = cli.price(cli.parse_args([*common, "--structure", str(fragment)]))
    for key in ("latency_ms", "flops", "params", "num_ops", "structure"):
        assert by_structure[key] == by_tokens[key]
    assert by_structure["latency_ms"] == pytest.approx(21.117)


def test_nearest_policy_from_the_config_reports_substitutions(latency_855_path):
    cli = load_cli()
    args = ["-c", str(DEMO_CONFIG), "--tokens", PUBLISHED, "--table", str(latency_855_path)]
    out = cli.price(cli.parse_args([*args, "-o", "Constraint.missing_keys=nearest"]))
    assert len(out["missing_keys"]) == 22 and len(out["substitutions"]) == 22
    assert out["substitutions"][0] == {
        "key": "conv,0,0,1,3,160,160,12,1,3,1,2,1",
        "used": "conv,0,0,1,3,640,640,12,1,3,1,2,1",
        "latency": 3237.0,
    }


def test_bad_tokens_are_user_errors():
    cli = load_cli()
    with pytest.raises(SearchSpaceError, match="--tokens must be comma-separated integers"):
        cli.price(cli.parse_args(["-c", str(DEMO_CONFIG), "--tokens", "1,2,x"]))
    with pytest.raises(SearchSpaceError, match="token 0 = 9 is out of range"):
        cli.price(cli.parse_args(["-c", str(DEMO_CONFIG), "--tokens", "9,0,0,0,0,0,0,0,0"]))


def test_scripts_in_tools_still_import_the_latency_package():
    # tools/ is sys.path[0] for its scripts, where tools/latency.py would shadow the package
    code = "import zlib, latency.table, ppnas.constraint; print(latency.table.__file__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT / "tools")
    assert proc.returncode == 0, proc.stderr
    assert pathlib.Path(proc.stdout.strip()) == ROOT / "latency" / "table.py"


def test_a_missing_structure_file_is_named_as_such(capsys):
    from ppnas.cli import run_main

    with pytest.raises(SystemExit) as stop:
        run_main(load_cli().main, ["-c", str(DEMO_CONFIG), "--structure", "output/nope/blazeface_nas.yml"])
    assert stop.value.code == 2
    assert capsys.readouterr().err == (
        "error: structure file not found: output/nope/blazeface_nas.yml (a search writes it as "
        "<save_dir>/blazeface_nas.yml)\n"
    )
