"""Reading recordings: layout detection, generic options, and every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device_sim.csvio import CsvOptions, read_recording
from device_sim.recording import CsvKind, RecordingError
from fedge.errors import ConfigError
from tests.device_sim.recordings import skab_dir, skab_oracle, write

SKAB_HEAD = "datetime;a;b;anomaly;changepoint\r\n"


def test_skab_file_is_detected_with_labels_apart_from_channels() -> None:
    """valve1/0.csv reads as SKAB: 8 channels, anomaly/changepoint as labels, UTC times."""
    path = skab_dir() / "valve1" / "0.csv"
    times, values, labels = skab_oracle(path)

    recording = read_recording(path)

    assert recording.kind is CsvKind.SKAB
    assert len(recording.channels) == 8
    assert "Volume Flow RateRMS" in recording.channels
    assert recording.label_names == ("anomaly", "changepoint")
    assert recording.rows == 1147
    assert recording.timestamps[0] == 1583748873.0  # 2020-03-09 10:14:33 UTC
    assert np.array_equal(recording.timestamps, times)
    assert np.array_equal(recording.values.view(np.uint32), values.view(np.uint32))
    assert recording.labels is not None
    assert np.array_equal(recording.labels, labels)


def test_skab_file_without_label_columns_has_no_labels() -> None:
    """The anomaly-free SKAB file has no label columns, so the recording has none."""
    recording = read_recording(skab_dir() / "anomaly-free" / "anomaly-free.csv")

    assert recording.kind is CsvKind.SKAB
    assert recording.labels is None
    assert recording.label_names == ()


def test_fedge_csv_is_detected_with_label_prefix(tmp_path: Path) -> None:
    """A `timestamp` first column with `,` is fedge CSV; `label:` columns are labels."""
    path = write(tmp_path / "r.csv", "timestamp,x,label:anomaly\n1.5,0.1,0\n2.5,-2,1\n")

    recording = read_recording(path)

    assert recording.kind is CsvKind.FEDGE
    assert recording.channels == ("x",)
    assert recording.label_names == ("anomaly",)
    assert recording.timestamps.tolist() == [1.5, 2.5]
    assert recording.values.tolist() == [[np.float32(0.1)], [-2.0]]
    assert recording.labels is not None
    assert recording.labels.tolist() == [[0], [1]]


def test_generic_options_choose_columns_delimiter_and_time_format(tmp_path: Path) -> None:
    """Generic files take --delimiter, --time-column, --time-format, --channels, --labels."""
    text = (
        "id|when|temp|rpm|fault\n"
        "7|09.03.2020 10:14:33|20.5|1500|0\n"
        "8|09.03.2020 10:14:35|21|1490|1\n"
    )
    path = write(tmp_path / "g.txt", text)
    options = CsvOptions(
        delimiter="|",
        time_column="when",
        time_format="%d.%m.%Y %H:%M:%S",
        channels=("temp", "rpm"),
        label_columns=("fault",),
    )

    recording = read_recording(path, options)

    assert recording.kind is CsvKind.GENERIC
    assert recording.channels == ("temp", "rpm")
    assert recording.timestamps.tolist() == [1583748873.0, 1583748875.0]
    assert recording.values.tolist() == [[20.5, 1500.0], [21.0, 1490.0]]
    assert recording.label_names == ("fault",)


def test_generic_file_guesses_delimiter_time_column_and_format(tmp_path: Path) -> None:
    """Without options a generic file uses its most frequent delimiter and a `time` column."""
    epoch = write(tmp_path / "e.csv", "v1;time;v2\n1;100.25;2\n3;101;4\n")
    iso = write(tmp_path / "i.csv", "Time\tv\n2020-03-09T10:14:33+01:00\t1\n")
    ms = write(tmp_path / "m.csv", "t,v\n1500,1\n")

    by_epoch = read_recording(epoch)
    by_iso = read_recording(iso)
    by_ms = read_recording(ms, CsvOptions(time_column="t", time_format="epoch-ms"))

    assert by_epoch.channels == ("v1", "v2")
    assert by_epoch.timestamps.tolist() == [100.25, 101.0]
    assert by_iso.timestamps.tolist() == [1583748873.0 - 3600]
    assert by_ms.timestamps.tolist() == [1.5]


def test_quoted_fields_are_read_with_line_numbers(tmp_path: Path) -> None:
    """Quoted cells (some exporters quote everything) parse; errors keep their line numbers."""
    good = write(tmp_path / "q.csv", '"time";"v;w"\r\n"1";"2.5"\r\n\r\n"2";"3"\r\n')
    bad = write(tmp_path / "b.csv", '"time","v"\n"1","2"\n"2","x"\n')

    recording = read_recording(good)

    assert recording.channels == ("v;w",)
    assert recording.values.tolist() == [[2.5], [3.0]]
    with pytest.raises(RecordingError, match=r"b\.csv:3: column 'v': 'x' is not a number"):
        read_recording(bad)


def test_missing_time_column_is_named_with_the_header(tmp_path: Path) -> None:
    """A file with no recognisable time column says so and lists its header, at line 1."""
    path = write(tmp_path / "g.csv", "a,b\n1,2\n")

    with pytest.raises(RecordingError, match=r"g\.csv:1: cannot tell which column is the time"):
        read_recording(path)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (CsvOptions(channels=("a", "nope")), r"no column 'nope' \(--channels\)"),
        (CsvOptions(label_columns=("gone",)), r"no column 'gone' \(--label-columns\)"),
        (CsvOptions(time_column="when"), r"no column 'when' \(--time-column\)"),
    ],
)
def test_missing_column_names_file_line_and_column(
    tmp_path: Path, options: CsvOptions, expected: str
) -> None:
    """Asking for a column the header lacks is an error at the header line naming it."""
    path = write(tmp_path / "s.csv", SKAB_HEAD + "2020-03-09 10:14:33;1;2;0;0\r\n")

    with pytest.raises(RecordingError, match=r"s\.csv:1: " + expected):
        read_recording(path, options)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("2020-03-09 10:14:34;1;2;0", r":3: expected 5 fields as in the header, found 4"),
        ("2020-03-09 10:14:34;1;abc;0;0", r":3: column 'b': 'abc' is not a number"),
        ("2020-03-09 10:14:34;1;;0;0", r":3: column 'b': '' is not a number"),
        ("2020-03-09 10:14:34;nan;2;0;0", r":3: column 'a': 'nan' is not a finite number"),
        ("2020-03-09 10:14:34;1e39;2;0;0", r":3: column 'a': '1e39' is out of float32 range"),
        ("2020-03-09 10:14:34;1;2;0.5;0", r":3: column 'anomaly': '0.5' is not a label"),
        ("2020-03-09 10:14:34;1;2;0;300", r":3: column 'changepoint': '300' is not a label"),
        ("yesterday;1;2;0;0", r":3: column 'datetime': 'yesterday' is not an ISO 8601 time"),
        ("2020-03-09 10:14:32;1;2;0;0", r":3: column 'datetime': .* earlier than a previous row"),
    ],
)
def test_bad_row_names_file_line_column_and_value(tmp_path: Path, row: str, expected: str) -> None:
    """Each kind of bad row is an error naming file, line, column and the value found."""
    text = SKAB_HEAD + "2020-03-09 10:14:33;1;2;0;0\r\n" + row + "\r\n"
    path = write(tmp_path / "bad.csv", text)

    with pytest.raises(RecordingError, match=r"bad\.csv" + expected) as info:
        read_recording(path)

    assert info.value.line == 3


def test_skip_bad_rows_keeps_the_good_ones_and_counts(tmp_path: Path) -> None:
    """--skip-bad-rows drops every bad row, counts them and remembers the first reason."""
    text = (
        SKAB_HEAD
        + "2020-03-09 10:14:33;1;2;0;0\r\n"
        + "2020-03-09 10:14:34;1;x;0;0\r\n"
        + "2020-03-09 10:14:35;3;4;1;0\r\n"
        + "2020-03-09 10:14:36;5\r\n"
        + "2020-03-09 10:14:30;9;9;0;0\r\n"
        + "\r\n"
        + "2020-03-09 10:14:37;6;7;0;1\r\n"
    )
    path = write(tmp_path / "skip.csv", text)

    recording = read_recording(path, CsvOptions(skip_bad_rows=True))

    assert recording.bad_rows == 3
    assert recording.first_bad is not None
    assert "skip.csv:3: column 'b': 'x' is not a number" in recording.first_bad
    assert recording.values.tolist() == [[1, 2], [3, 4], [6, 7]]
    assert recording.timestamps.tolist() == [1583748873.0, 1583748875.0, 1583748877.0]


def test_without_skip_the_error_counts_the_other_bad_rows(tmp_path: Path) -> None:
    """The error names the first bad row and how many more the rows read so far hold."""
    text = SKAB_HEAD + "x;1;2;0;0\r\n" + "2020-03-09 10:14:35;a;4;1;0\r\n"
    path = write(tmp_path / "two.csv", text)

    with pytest.raises(RecordingError, match=r"two\.csv:2: .*\(and 1 more bad row up to line 3\)"):
        read_recording(path)


def test_file_level_problems_are_clear(tmp_path: Path) -> None:
    """Missing, empty, header-only, non-UTF-8 and duplicate-header files fail clearly."""
    cases = {
        "missing.csv": None,
        "empty.csv": b"\n\n",
        "header.csv": b"timestamp,x\n",
        "latin1.csv": b"timestamp,x\n1,2\n2,\xe9\n",
        "dup.csv": b"timestamp,x,x\n1,2,3\n",
    }
    for name, data in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)

    errors = {}
    for name in cases:
        with pytest.raises(RecordingError) as info:
            read_recording(tmp_path / name)
        errors[name] = str(info.value)

    assert "missing.csv: cannot read" in errors["missing.csv"]
    assert "empty.csv: is empty" in errors["empty.csv"]
    assert "header.csv: has a header but no data rows" in errors["header.csv"]
    assert "latin1.csv:3: is not UTF-8 text" in errors["latin1.csv"]
    assert "dup.csv:1: column name 'x' appears twice" in errors["dup.csv"]


def test_unreadable_file_says_why(tmp_path: Path) -> None:
    """A path that cannot be read as a file is an error naming it and the system's reason."""
    path = tmp_path / "folder.csv"
    path.mkdir()

    with pytest.raises(RecordingError, match=r"folder\.csv: cannot read: Is a directory"):
        read_recording(path)


def test_all_rows_bad_is_an_error_even_when_skipping(tmp_path: Path) -> None:
    """Skipping every row leaves nothing to replay, which is an error, not an empty device."""
    path = write(tmp_path / "all.csv", "timestamp,x\n1,a\n2,b\n")

    with pytest.raises(RecordingError, match=r"all\.csv: has no valid data rows: all 2 rows"):
        read_recording(path, CsvOptions(skip_bad_rows=True))


def test_bad_options_are_config_errors() -> None:
    """A multi-character delimiter or an unknown time format is rejected up front."""
    with pytest.raises(ConfigError, match="--delimiter"):
        CsvOptions(delimiter=";;")
    with pytest.raises(ConfigError, match="--time-format"):
        CsvOptions(time_format="unix")
