"""The latency table reader and writer: the real Snapdragon 855 table, the format family, every error path."""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py

import pytest

from latency.table import LatencyTable, append_entries, op_kind
from ppnas.errors import TableError

HEADER = "op_type\t855\tus\n"


def write(tmp_path, text, name="table.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_reads_the_real_855_table(latency_855_path):
    table = LatencyTable.load(latency_855_path)
    assert (table.engine, table.device, table.unit) == ("op_type", "855", "us")
    assert len(table.entries) == 595
    keys = list(table.entries)
    assert keys[0] == "conv,0,0,1,3,640,640,8,1,3,1,2,1"
    assert table.entries[keys[0]] == 2433.0
    assert keys[-1] == "conv,0,0,1,96,80,80,4,1,3,1,1,1"
    assert table.lookup(keys[-1]) == 3568.0
    assert table.lookup("conv,0,0,1,3,640,640,8,1,3,1,2,2") is None
    assert table.kinds == ["conv"]
    assert table.ms_per_unit == pytest.approx(1e-3)
    assert table.settings == {} and table.calibration is None


def test_reads_every_op_type_of_the_format_family(tmp_path):
    lines = [
        "conv,0,0,1,8,40,40,8,8,3,1,2,1\t10",  # depthwise
        "conv,0,0,1,1280,1,1,1000,1,1,0,1,1\t20",  # fc as a 1x1 conv
        "conv,0,0,1,4,32,32,4,1,3,0,2,1,1,0,1\t5.5",  # asymmetric padding extras
        "relu,1,8,40,40\t1",
        "relu6,1,8,40,40\t1",
        "batch_norm,None,1,8,40,40\t2",
        "eltwise,2,1,8,40,40\t3",
        "pooling,0,1,8,40,40,2,0,2,1,1\t4",
        "pooling,1,1,8,40,40,40,0,1,0,2\t4",
        "softmax,1,1,1000,1,1\t0.5",
        "interp,bilinear,0,1,8,40,40,160,160\t7",
        "concat,1,1,24,40,40,3\t8",
    ]
    table = LatencyTable.load(write(tmp_path, HEADER + "\n".join(lines) + "\n"))
    assert len(table.entries) == len(lines)
    assert table.kinds == ["activation", "batch_norm", "concat", "conv", "eltwise", "interp", "pooling", "softmax"]
    assert op_kind("relu6,1,8,40,40") == "activation"
    assert table.lookup("conv,0,0,1,4,32,32,4,1,3,0,2,1,1,0,1") == 5.5


@pytest.mark.parametrize(
    "body, line, words",
    [
        ("conv,0,0,1,8,40,40,8,8,3,1,2,1\t10\nconv,0,0,1,8,40,40,8,8,3,1,2,1\t11\n", 3, ["duplicate key", "line 2"]),
        ("conv,0,0,1,8,40,40,8,8,3,1,2,1 10\n", 2, ["no TAB"]),
        ("conv,0,0,1,8,40,40,8,8,3,1,2,1\tfast\n", 2, ["not a number", "'fast'"]),
        ("relu,1,8,40,40\t1\nswizzle,1,8,40,40\t1\n", 3, ["unknown op type 'swizzle'"]),
        ("conv,0,0,1,8,40,40,8\t1\n", 2, ["bad field count", "12 to 18", "got 7"]),
        ("relu,1,8,40,40\t1\t2\n", 2, ["bad field count"]),
        ("conv,0,0,1,8,x,40,8,8,3,1,2,1\t1\n", 2, ["must be an integer", "'x'"]),
        ("relu,1,8,40,40\t-1\n", 2, ["non-negative"]),
    ],
)
def test_errors_name_file_and_line(tmp_path, body, line, words):
    path = write(tmp_path, HEADER + body)
    with pytest.raises(TableError) as err:
        LatencyTable.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}:")
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    "header, words",
    [("op_type\t855\n", ["bad field count", "got 2"]), ("op_type\t855\tminutes\n", ["unknown unit 'minutes'"])],
)
def test_header_errors(tmp_path, header, words):
    path = write(tmp_path, header + "relu,1,8,40,40\t1\n")
    with pytest.raises(TableError) as err:
        LatencyTable.load(path)
    assert str(err.value).startswith(f"{path}:1:")
    assert all(word in str(err.value) for word in words)


def test_missing_file_is_a_table_error(tmp_path):
    with pytest.raises(TableError, match="not found"):
        LatencyTable.load(str(tmp_path / "nope.txt"))


def test_writer_round_trip_with_settings_and_calibration(tmp_path):
    table = LatencyTable(
        engine="paddle_inference-2.6.2",
        device="cpu:Some CPU",
        unit="us",
        entries={"conv,0,0,1,3,32,32,8,1,3,1,2,1": 12.5, "relu,1,8,16,16": 0.75},
        settings={"device": "cpu", "threads": "1", "mkldnn": "0", "calib_a": "1.1", "calib_b": "-20"},
    )
    path = table.save(str(tmp_path / "t.txt"))
    first_line = open(path, encoding="utf-8").readline()
    assert first_line.split("\t")[:3] == ["paddle_inference-2.6.2", "cpu:Some CPU", "us"]
    append_entries(path, [("batch_norm,None,1,8,16,16", 3.0)])
    loaded = LatencyTable.load(path)
    assert loaded.entries == {**table.entries, "batch_norm,None,1,8,16,16": 3.0}
    assert loaded.settings == table.settings
    assert loaded.calibration == (1.1, -20.0)


def test_writer_refuses_bad_keys_and_settings(tmp_path):
    with pytest.raises(TableError, match="unknown op type"):
        append_entries(str(tmp_path / "t.txt"), [("warp,1,2", 1.0)])
    table = LatencyTable(engine="e", device="d", unit="us", settings={"note": "a;b"})
    with pytest.raises(TableError, match="may not contain"):
        table.save(str(tmp_path / "t.txt"))
