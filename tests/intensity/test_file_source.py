from datetime import UTC, datetime
from pathlib import Path

import pytest

from carbonshift.errors import UserInputError
from carbonshift.intensity.sources.files import FileSource
from carbonshift.intensity.types import GridZone, Kind, Signal, TimeSpan

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "es.csv"
    p.write_text(text)
    return p


def test_file_values_are_used_as_given_past_and_future(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "timestamp,g_per_kwh\n2026-03-01T10:00Z,100\n2026-03-01T11:00Z,200\n"
        "2026-03-01T13:00:00+01:00,300\n2026-03-01T13:00Z,400\n",
    )
    series = FileSource({"ES": path}).fetch(
        GridZone("ES"),
        TimeSpan(datetime(2026, 3, 1, 9, tzinfo=UTC), datetime(2026, 3, 1, 15, tzinfo=UTC)),
        Signal.AVERAGE,
        NOW,
    )
    points = [(p.start.hour, p.end.hour, p.g_per_kwh) for p in series.points()]
    # offsets are normalised to UTC (13:00+01:00 is 12:00Z); the last row holds one step; rest is a gap
    assert points == [(10, 11, 100.0), (11, 12, 200.0), (12, 13, 300.0), (13, 14, 400.0)]
    assert [(g.start.hour, g.end.hour) for g in series.missing_spans()] == [(9, 10), (14, 15)]


def _kinds(src: FileSource, now: datetime) -> list[tuple[str, str, float, Kind]]:
    series = src.fetch(
        GridZone("ES"),
        TimeSpan(datetime(2026, 3, 1, 11, tzinfo=UTC), datetime(2026, 3, 1, 13, 30, tzinfo=UTC)),
        Signal.AVERAGE,
        now,
    )
    assert all(p.provenance.source == "file:es.csv" for p in series.points())
    return [
        (p.start.strftime("%H:%M"), p.end.strftime("%H:%M"), p.g_per_kwh, p.provenance.kind)
        for p in series.points()
    ]


def test_a_file_keeps_one_kind_whenever_it_is_read(tmp_path: Path) -> None:
    """The plan (before the run) and the tracker (after it) read the same rows the same way: a file's
    values are not split into measured and forecast at "now"."""
    path = _write(
        tmp_path, "timestamp,g_per_kwh\n2026-03-01T11:00Z,100\n2026-03-01T12:30Z,200\n2026-03-01T13:00Z,250\n"
    )
    src = FileSource({"ES": path})
    before = _kinds(src, datetime(2026, 3, 1, 10, tzinfo=UTC))
    after = _kinds(src, datetime(2026, 3, 1, 20, tzinfo=UTC))
    assert (
        before
        == after
        == [
            ("11:00", "12:30", 100.0, Kind.MEASURED),
            ("12:30", "13:00", 200.0, Kind.MEASURED),
            ("13:00", "13:30", 250.0, Kind.MEASURED),  # the last row holds for the file's typical step
        ]
    )


def test_a_kind_column_says_which_rows_are_forecasts(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "timestamp,g_per_kwh,kind\n2026-03-01T11:00Z,100,measured\n2026-03-01T12:30Z,200,Measured\n"
        "2026-03-01T13:00Z,250,Forecast\n",
    )
    kinds = [k for *_, k in _kinds(FileSource({"ES": path}), datetime(2026, 3, 1, 12, 40, tzinfo=UTC))]
    assert kinds == [Kind.MEASURED, Kind.MEASURED, Kind.FORECAST]
    bad = _write(tmp_path, "timestamp,g_per_kwh,kind\n2026-03-01T11:00Z,100,guessed\n")
    with pytest.raises(UserInputError, match=r"es.csv:2: kind: 'guessed' is not one of measured, forecast"):
        FileSource({"ES": bad}).fetch(
            GridZone("ES"),
            TimeSpan(datetime(2026, 3, 1, 11, tzinfo=UTC), datetime(2026, 3, 1, 12, tzinfo=UTC)),
            Signal.AVERAGE,
            NOW,
        )


def test_duplicate_timestamps_are_rejected_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "timestamp,g_per_kwh\n2026-03-01T12:00Z,1\n2026-03-01T13:00+01:00,2\n")
    with pytest.raises(UserInputError, match=r"es\.csv.*appears twice"):
        FileSource({"ES": path}).data_for(GridZone("ES"))


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("time,value\n2026-03-01T12:00Z,1\n", "header must contain"),
        ("timestamp,g_per_kwh\n2026-03-01T12:00,1\n", r"es\.csv:2.*no timezone"),
        ("timestamp,g_per_kwh\n2026-03-01T12:00Z,abc\n", r"es\.csv:2.*not a number"),
        ("timestamp,g_per_kwh\n2026-03-01T12:00Z,-5\n", r"es\.csv:2.*outside"),
        ("timestamp,g_per_kwh\n", "no rows"),
    ],
)
def test_bad_files_name_file_and_line(tmp_path: Path, body: str, match: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(UserInputError, match=match):
        FileSource({"ES": path}).data_for(GridZone("ES"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="not found"):
        FileSource({"ES": tmp_path / "nope.csv"}).data_for(GridZone("ES"))


def test_zone_lookup_is_case_insensitive_and_signal_specific(tmp_path: Path) -> None:
    path = _write(tmp_path, "timestamp,g_per_kwh\n2026-03-01T12:00Z,1\n")
    src = FileSource({"es": path})
    assert src.supports(GridZone("ES"), Signal.AVERAGE)
    assert not src.supports(GridZone("ES"), Signal.MARGINAL)
    assert not src.supports(GridZone("FR"), Signal.AVERAGE)
