"""This machine's time zone and the country it names: the last clue to where a job runs when nothing
else says (no option, no config `location`, no cloud metadata).

The zone name comes from the TZ environment variable, else from the machine's configuration as
tzlocal reads it (/etc/timezone, the /etc/localtime symlink, macOS, Windows). The country comes from
the tz database's `zone.tab` (one ISO 3166 alpha-2 code per zone), found in the directories Python's
zoneinfo searches (PYTHONTZPATH, else zoneinfo.TZPATH), else in the `tzdata` package when installed.
A legacy name ('US/Eastern') is followed through the database's links (`tzdata.zi`) to a zone in the
table, unless that zone spans several countries (`zone1970.tab`): 'Iceland' links to Africa/Abidjan,
and claiming Côte d'Ivoire would be worse than claiming nothing. UTC and the Etc/ zones name no country.
"""

from __future__ import annotations

import logging
import os
import zoneinfo
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

ZONE_TAB = "zone.tab"
_NO_COUNTRY = frozenset(
    {"UTC", "UCT", "GMT", "GMT0", "GMT+0", "GMT-0", "GREENWICH", "UNIVERSAL", "ZULU", "FACTORY"}
)
_MAX_LINK_HOPS = 8


def local_zone_name(environ: Mapping[str, str] | None = None) -> str | None:
    """The IANA name of this machine's time zone ('Europe/Berlin'), or None when nothing says.

    TZ wins when set (':Europe/Berlin' and '/usr/share/zoneinfo/Europe/Berlin' are understood);
    otherwise the machine's configuration, through tzlocal (installed with APScheduler)."""
    env = os.environ if environ is None else environ
    tz = env.get("TZ")
    if tz:
        return _name_from_tz_variable(tz)
    try:
        from tzlocal import get_localzone_name

        return get_localzone_name() or None
    except Exception as exc:  # best effort: an odd configuration means "unknown", never a crash
        log.debug("local time zone unknown: %s", exc)
        return None


def _name_from_tz_variable(value: str) -> str:
    text = value[1:] if value.startswith(":") else value
    if os.path.isabs(text):
        resolved = Path(os.path.realpath(text)).as_posix()
        marker = "/zoneinfo/"
        if marker in resolved:
            text = resolved.rsplit(marker, 1)[1]
            for prefix in ("posix/", "right/"):
                text = text.removeprefix(prefix)
    return text.strip()


def zone_tab_paths(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where `zone.tab` may be, in order: each PYTHONTZPATH directory (read now, so a test can set it),
    else each of zoneinfo.TZPATH; then the `tzdata` package's copy, if that package is installed."""
    env = os.environ if environ is None else environ
    if "PYTHONTZPATH" in env:
        dirs = [d for d in env["PYTHONTZPATH"].split(os.pathsep) if os.path.isabs(d)]
    else:
        dirs = list(zoneinfo.TZPATH)
    paths = [Path(d) / ZONE_TAB for d in dirs]
    try:
        packaged = resources.files("tzdata").joinpath("zoneinfo", ZONE_TAB)
    except (ModuleNotFoundError, TypeError):
        pass
    else:
        if isinstance(packaged, Path):
            paths.append(packaged)
    return paths


def find_zone_tab(environ: Mapping[str, str] | None = None) -> Path | None:
    """The first `zone.tab` that exists (see zone_tab_paths), or None."""
    return next((p for p in zone_tab_paths(environ) if p.is_file()), None)


def country_of_zone(zone_name: str, zone_tab: Path | None) -> str | None:
    """The ISO 3166 alpha-2 code of the country a time zone is in ('Europe/Berlin' -> 'DE'), or None
    for UTC and Etc/ zones, for a name the table does not know, and when the table cannot be read.

    `zone_tab` is a `zone.tab` (or a `zone1970.tab`, whose first code is the zone's principal
    country). Links are followed through `tzdata.zi` next to it; see the module docstring."""
    name = zone_name.strip().strip("/")
    if not name or zone_tab is None or not _may_be_a_country(name):
        return None
    table = _read_tab(zone_tab)
    if table is None:
        return None
    if name in table:
        return table[name][0]
    target = _follow_links(name, zone_tab.parent / "tzdata.zi", table)
    if target is None or not _may_be_a_country(target):
        return None
    spans = _read_tab(zone_tab.parent / "zone1970.tab") or {}
    countries = spans.get(target, table[target])
    return table[target][0] if len(countries) == 1 else None


def _may_be_a_country(name: str) -> bool:
    return not name.upper().startswith("ETC/") and name.upper() not in _NO_COUNTRY


def _read_tab(path: Path) -> dict[str, list[str]] | None:
    """zone name -> its country codes (the first one principal), from a zone.tab-style file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    table: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) >= 3 and cols[0].strip():
            codes = [c.strip().upper() for c in cols[0].split(",") if c.strip()]
            table.setdefault(cols[2].strip(), codes)
    return table


def _follow_links(name: str, zi: Path, table: Mapping[str, list[str]]) -> str | None:
    """The zone in `table` that link `name` leads to, through `L TARGET LINK` lines of tzdata.zi."""
    try:
        text = zi.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    links: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "L":
            links[parts[2]] = parts[1]
    current = name
    for _ in range(_MAX_LINK_HOPS):
        nxt = links.get(current)
        if nxt is None:
            return None
        if nxt in table:
            return nxt
        current = nxt
    return None
