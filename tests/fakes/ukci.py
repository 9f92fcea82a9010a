"""A fake GB Carbon Intensity API: national `/intensity/{from}/{to}` and `/intensity/{from}/fw48h`,
regional `/regional/intensity/{from}/{to|fw48h}/regionid/{id}` and `.../postcode/{outward}`.

Half-hour slots shaped as in the documented bodies (tests/fixtures/api). National past slots carry
`actual` once they are older than `actual_lag_s`; regional slots carry forecasts only. The regional
range answers nest `data` as an object with its own `data` list; with `postcode_shape = "list"` the
postcode answers use the list-of-regions shape of `/regional/postcode/{outward}` instead. Ranges over
14 days get 400, as do unknown region ids and postcodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from tests.fakes._common import Clocked, fixture, iso, parse
from tests.fakes.http_server import FakeHttpServer, FakeRequest, FakeResponse

SLOT = 1800
RANGE_MAX_S = 14 * 24 * 3600
FMT = "%Y-%m-%dT%H:%MZ"
REGIONS = {
    1: ("Scottish Hydro Electric Power Distribution", "North Scotland"),
    9: ("WPD East Midlands", "East Midlands"),
    13: ("UKPN London", "London"),
    17: ("SP Distribution", "South Scotland"),
}
POSTCODES = {"NG1": 9, "SW1": 13, "EH1": 17, "IV1": 1}


def default_value(key: str, t: int) -> float:
    return 150.0 + 4.0 * ((t // SLOT) % 48) + (30.0 if key != "national" else 0.0)


def _index(v: float) -> str:
    for limit, name in ((50, "very low"), (130, "low"), (210, "moderate"), (310, "high")):
        if v < limit:
            return name
    return "very high"


class FakeUkci(Clocked):
    def __init__(
        self,
        server: FakeHttpServer,
        *,
        value: Callable[[str, int], float | None] = default_value,
        actual_lag_s: int = 0,
    ) -> None:
        self.server = server
        self.value = value
        self.actual_lag_s = actual_lag_s
        self.postcode_shape: Literal["object", "list"] = "object"
        t = r"(?P<from>[0-9T:\-]+Z)/(?P<to>[0-9T:\-]+Z|fw48h)"
        server.route(rf"/intensity/{t}", self._national)
        server.route(rf"/regional/intensity/{t}/regionid/(?P<id>[^/]+)", self._regionid)
        server.route(rf"/regional/intensity/{t}/postcode/(?P<pc>[^/]+)", self._postcode)

    @property
    def base_url(self) -> str:
        return self.server.url

    def settings_overrides(self) -> dict[str, Any]:
        return {"ukci_url": self.base_url, "ukci_enabled": True}

    def env(self) -> dict[str, str]:
        return {"CARBONSHIFT_UKCI_URL": self.base_url}

    # ---- handlers -----------------------------------------------------------------------------
    def _range(self, req: FakeRequest) -> tuple[range, FakeResponse | None]:
        assert req.match is not None
        start = parse(req.match["from"])
        end = (
            start + 48 * 3600 if start is not None and req.match["to"] == "fw48h" else parse(req.match["to"])
        )
        if start is None or end is None or end <= start:
            return range(0), self._error("Invalid date range")
        if end - start > RANGE_MAX_S:
            return range(0), self._error("Date range must not exceed 14 days")
        first = start - start % SLOT
        return range(first, end, SLOT), None

    @staticmethod
    def _error(message: str) -> FakeResponse:
        return FakeResponse.json({"error": {"code": "400 Bad Request", "message": message}}, status=400)

    def _national(self, req: FakeRequest) -> FakeResponse:
        times, error = self._range(req)
        if error:
            return error
        template = fixture("ukci_intensity_fw48h_national_2023-12-03.json")["data"][0]
        now = self.now_s()
        data = []
        for t in times:
            v = self.value("national", t)
            actual = v - 3.0 if v is not None and t + SLOT + self.actual_lag_s <= now else None
            data.append(
                {
                    **template,
                    "from": self._fmt(t),
                    "to": self._fmt(t + SLOT),
                    "intensity": {"forecast": v, "actual": actual, "index": _index(v or 0)},
                }
            )
        return FakeResponse.json({"data": data})

    def _slots(self, key: str, times: range) -> list[dict[str, Any]]:
        template = fixture("ukci_regional_postcode_current_NG1.json")["data"][0]["data"][0]
        out = []
        for t in times:
            v = self.value(key, t)
            out.append(
                {
                    **template,
                    "from": self._fmt(t),
                    "to": self._fmt(t + SLOT),
                    "intensity": {"forecast": v, "index": _index(v or 0)},
                }
            )
        return out

    def _region(self, region_id: int, key: str, times: range, postcode: str | None) -> dict[str, Any]:
        template = fixture("ukci_regional_postcode_current_NG1.json")["data"][0]
        dno, short = REGIONS[region_id]
        region = {**template, "regionid": region_id, "dnoregion": dno, "shortname": short}
        if postcode is None:
            region.pop("postcode", None)
        else:
            region["postcode"] = postcode
        region["data"] = self._slots(key, times)
        return region

    def _regionid(self, req: FakeRequest) -> FakeResponse:
        assert req.match is not None
        raw = req.match["id"]
        if not raw.isdigit() or int(raw) not in REGIONS:
            return self._error(f"Invalid region id {raw}")
        times, error = self._range(req)
        if error:
            return error
        return FakeResponse.json({"data": self._region(int(raw), f"region{raw}", times, None)})

    def _postcode(self, req: FakeRequest) -> FakeResponse:
        assert req.match is not None
        pc = req.match["pc"].upper()
        if pc not in POSTCODES:
            return self._error("Please enter a valid outward postcode")
        times, error = self._range(req)
        if error:
            return error
        region = self._region(POSTCODES[pc], f"postcode{pc}", times, pc)
        return FakeResponse.json({"data": [region] if self.postcode_shape == "list" else region})

    @staticmethod
    def _fmt(t: int) -> str:
        return iso(t, FMT)
