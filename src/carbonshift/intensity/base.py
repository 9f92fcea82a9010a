"""The seam every intensity source plugs into (one class per API or table).

A source only translates: it turns its API into an IntensitySeries over the asked span, or raises
SourceError with a reason a person can act on. Priority, caching and fallback belong to the merging
service, never to a source.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from carbonshift.errors import CarbonshiftError
from carbonshift.intensity.types import GridZone, IntensitySeries, Signal, TimeSpan


class SourceError(CarbonshiftError):
    """A source could not answer. `reason` is shown to users and kept in provenance notes, so it must
    never contain a credential."""

    def __init__(
        self,
        source: str,
        reason: str,
        *,
        auth: bool = False,
        unknown_zone: bool = False,
        transient: bool = False,
    ) -> None:
        self.source = source
        self.reason = reason
        self.auth = auth
        self.unknown_zone = unknown_zone
        self.transient = transient
        super().__init__(f"{source}: {reason}")


@runtime_checkable
class IntensitySource(Protocol):
    """One intensity data source."""

    name: str

    def supports(self, zone: GridZone, signal: Signal) -> bool:
        """Whether this source can possibly answer for the zone and signal (no I/O)."""
        ...

    def fetch(self, zone: GridZone, span: TimeSpan, signal: Signal, now: datetime) -> IntensitySeries:
        """A series covering exactly `span` (NaN where the source has nothing), with provenance per
        value: kind `measured` for time before `now`, `forecast` after. Raises SourceError."""
        ...


def is_remote(source: IntensitySource) -> bool:
    """Whether a source asks a service elsewhere, so that every process that fetches asks it again
    (quotas, rate limits): true unless the source says `remote = False`, as user files do."""
    return bool(getattr(source, "remote", True))


def place_key(source: IntensitySource, zone: GridZone) -> str:
    """The key a source's answers for a zone are cached and shared under. Most sources know a place
    by its zone id; a source that asks by something finer (a WattTime region, an SDK location name)
    defines `place_key(zone)`."""
    custom = getattr(source, "place_key", None)
    return str(custom(zone)) if callable(custom) else zone.id
