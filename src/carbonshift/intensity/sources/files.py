"""User files: a zone mapped to a CSV of `timestamp,g_per_kwh` in the config file.

A file's values are used as given for every time they cover, past or future, so a file can carry a
user's own forecast, a measured history from a meter, or a what-if scenario. Each row's value holds
until the next row's timestamp; the last row holds for the file's typical step.

Each value keeps one kind whenever it is read: `measured` (the user's figures, taken as given) unless
an optional `kind` column says `forecast` (or `measured`) for that row. It is not split at "now", so the plan made before a run and
the tracker's report after it name the same data the same way, and planned vs actual compare like
with like.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import numpy as np

from carbonshift.errors import UserInputError
from carbonshift.intensity.types import Basis, GridZone, IntensitySeries, Kind, Provenance, Signal, TimeSpan
from carbonshift.timeutil import from_epoch_s, isoformat_z, parse_datetime, to_epoch_s

REQUIRED_COLUMNS = ("timestamp", "g_per_kwh")
FILE_KINDS = {"measured": Kind.MEASURED, "forecast": Kind.FORECAST}


@dataclass(frozen=True)
class FileData:
    path: Path
    edges_s: np.ndarray
    values: np.ndarray
    kinds: tuple[Kind, ...] = ()  # per row; empty: every row measured

    @property
    def span(self) -> TimeSpan:
        return TimeSpan.from_epoch(int(self.edges_s[0]), int(self.edges_s[-1]))


def read_intensity_csv(path: Path, max_g_per_kwh: float = 2500.0) -> FileData:
    """Parse and validate a user's CSV; errors name the file and line, because it is the user's input."""
    mtime = os.stat(path).st_mtime_ns if path.exists() else 0
    return _read_cached(path.resolve(), mtime, max_g_per_kwh)


@lru_cache(maxsize=64)
def _read_cached(path: Path, _mtime_ns: int, max_g_per_kwh: float) -> FileData:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserInputError(str(path), "intensity file not found") from None
    except OSError as exc:
        raise UserInputError(str(path), f"cannot read intensity file ({exc.strerror})") from None
    times: list[int] = []
    values: list[float] = []
    kinds: list[Kind] = []
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        if not all(c in header for c in REQUIRED_COLUMNS):
            raise UserInputError(
                str(path),
                f"header must contain columns {','.join(REQUIRED_COLUMNS)} (found {','.join(header)})",
            )
        reader.fieldnames = header
        for row in reader:
            line = reader.line_num
            try:
                t = to_epoch_s(parse_datetime(row["timestamp"] or ""))
            except ValueError as exc:
                raise UserInputError(f"{path}:{line}", f"timestamp: {exc}") from None
            try:
                v = float(row["g_per_kwh"] or "")
            except ValueError:
                raise UserInputError(
                    f"{path}:{line}", f"g_per_kwh: not a number: {row['g_per_kwh']!r}"
                ) from None
            if not (0 <= v <= max_g_per_kwh):  # also False for NaN
                raise UserInputError(f"{path}:{line}", f"g_per_kwh: {v} is outside 0..{max_g_per_kwh:g}")
            kind_text = (row.get("kind") or "measured").strip().lower()
            if kind_text not in FILE_KINDS:
                raise UserInputError(
                    f"{path}:{line}", f"kind: {kind_text[:80]!r} is not one of {', '.join(FILE_KINDS)}"
                )
            times.append(t)
            values.append(v)
            kinds.append(FILE_KINDS[kind_text])
    if not times:
        raise UserInputError(str(path), "intensity file has no rows")
    t_arr = np.array(times, dtype=np.int64)
    order = np.argsort(t_arr, kind="stable")
    t_arr, v_arr = t_arr[order], np.array(values)[order]
    row_kinds = tuple(kinds[int(i)] for i in order)
    if np.any(np.diff(t_arr) == 0):
        dup = int(t_arr[np.flatnonzero(np.diff(t_arr) == 0)[0]])
        raise UserInputError(str(path), f"timestamp {isoformat_z(from_epoch_s(dup))} appears twice")
    step = int(np.median(np.diff(t_arr))) if len(t_arr) > 1 else 3600
    edges = np.append(t_arr, t_arr[-1] + step)
    return FileData(path, edges, v_arr, row_kinds)


class FileSource:
    """Serves the configured files: `files` maps a zone id (known or the user's own) to a CSV path."""

    name = "files"
    remote = False  # read from this machine: asking again costs no one's quota (base.is_remote)

    def __init__(
        self,
        files: dict[str, Path],
        signal: Signal = Signal.AVERAGE,
        max_g_per_kwh: float = 2500.0,
        basis: Basis = Basis.LIFECYCLE,
    ) -> None:
        self._files = {zone.upper(): Path(p) for zone, p in files.items()}
        self._signal = signal
        self._max = max_g_per_kwh
        self._basis = basis

    def supports(self, zone: GridZone, signal: Signal) -> bool:
        return signal is self._signal and zone.id.upper() in self._files

    def data_for(self, zone: GridZone) -> FileData:
        return read_intensity_csv(self._files[zone.id.upper()], self._max)

    def fetch(self, zone: GridZone, span: TimeSpan, signal: Signal, now: datetime) -> IntensitySeries:
        if not self.supports(zone, signal):
            return IntensitySeries.empty(zone.id, signal, span)
        data = self.data_for(zone)
        note = f"user file {data.path.name}"
        by_kind = {
            kind: Provenance(f"file:{data.path.name}", signal, kind, now, note, self._basis)
            for kind in FILE_KINDS.values()
        }
        kinds = data.kinds or (Kind.MEASURED,) * len(data.values)
        provs = [by_kind[k] for k in kinds]
        return IntensitySeries.from_intervals(
            zone.id, signal, data.edges_s[:-1], data.edges_s[1:], data.values, provs, span=span
        )
