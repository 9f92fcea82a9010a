"""A fake WattTime v3 API: `/login` (basic auth -> bearer token), `/v3/forecast`, `/v3/historical`,
`/v3/signal-index`, `/v3/region-from-loc`.

Bodies follow the documented examples in tests/fixtures/api. Values are in lbs/MWh at 5-minute steps.
Tokens are issued per login and can be revoked (`revoke_tokens()`) to make the next data call answer
401, the way an expired token does. Unknown regions get 400 with a message naming the region; a
historical range over 32 days gets 400.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from tests.fakes._common import Clocked, fixture, iso, parse
from tests.fakes.http_server import FakeHttpServer, FakeRequest, FakeResponse

STEP = 300
HISTORICAL_MAX_S = 32 * 24 * 3600


def default_value(region: str, signal_type: str, t: int) -> float:
    """Deterministic lbs/MWh."""
    base = 900.0 if signal_type == "co2_moer" else 600.0
    return base + 10.0 * ((t // STEP) % 12)


class FakeWattTime(Clocked):
    def __init__(
        self,
        server: FakeHttpServer,
        *,
        username: str = "wt-user",
        password: str = "wt-pass-s3cr3t-41d9",
        regions: set[str] | None = None,
        value: Callable[[str, str, int], float | None] = default_value,
    ) -> None:
        self.server = server
        self.username = username
        self.password = password
        self.regions = regions if regions is not None else {"CAISO_NORTH", "ISONE_WCMA", "PJM_DC"}
        self.value = value
        self.locations: dict[tuple[float, float], str] = {(42.372, -72.519): "ISONE_WCMA"}
        self.valid_tokens: set[str] = set()
        self.issued: list[str] = []
        self.signal_index_value = 37.1
        server.route(r"/login", self._login)
        server.route(r"/v3/forecast", self._forecast)
        server.route(r"/v3/historical", self._historical)
        server.route(r"/v3/signal-index", self._signal_index)
        server.route(r"/v3/region-from-loc", self._region_from_loc)

    @property
    def base_url(self) -> str:
        return self.server.url

    def settings_overrides(self) -> dict[str, Any]:
        return {
            "watttime_username": self.username,
            "watttime_password": self.password,
            "watttime_url": self.base_url,
        }

    def env(self) -> dict[str, str]:
        return {
            "CARBONSHIFT_WATTTIME_USERNAME": self.username,
            "CARBONSHIFT_WATTTIME_PASSWORD": self.password,
            "CARBONSHIFT_WATTTIME_URL": self.base_url,
        }

    def revoke_tokens(self) -> None:
        """Every token issued so far stops working (as when it expires)."""
        self.valid_tokens.clear()

    @property
    def logins(self) -> int:
        return len(self.issued)

    # ---- handlers -----------------------------------------------------------------------------
    def _login(self, req: FakeRequest) -> FakeResponse:
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if req.header("authorization") != f"Basic {expected}":
            return FakeResponse.json({"error": "invalid username or password"}, status=401)
        token = f"wt-jwt-{len(self.issued) + 1}-e8b1c2"
        self.issued.append(token)
        self.valid_tokens.add(token)
        body = fixture("watttime_v3_login.json")
        body["token"] = token
        return FakeResponse.json(body)

    def _check(self, req: FakeRequest, *, needs_region: bool = True) -> FakeResponse | None:
        auth = req.header("authorization") or ""
        if not auth.startswith("Bearer ") or auth[len("Bearer ") :] not in self.valid_tokens:
            return FakeResponse.json({"error": "invalid or expired token"}, status=401)
        if needs_region and req.q("region") not in self.regions:
            return FakeResponse.json({"error": f"region '{req.q('region')}' not found"}, status=400)
        if needs_region and req.q("signal_type") not in ("co2_moer", "co2_aoer"):
            return FakeResponse.json({"error": "unsupported signal_type"}, status=400)
        return None

    def _series(self, template_file: str, region: str, signal_type: str, times: range) -> dict[str, Any]:
        body = fixture(template_file)
        template = body["data"][0]
        body["data"] = [
            {
                **template,
                "point_time": iso(t, "%Y-%m-%dT%H:%M:%SZ"),
                "value": self.value(region, signal_type, t),
            }
            for t in times
        ]
        for item in body["data"]:
            if "imputed_data_used" in item:
                item["imputed_data_used"] = False
            if "last_updated" in item:
                item["last_updated"] = iso(self.now_s(), "%Y-%m-%dT%H:%M:%SZ")
        body["meta"]["region"] = region
        body["meta"]["signal_type"] = signal_type
        body["meta"].pop("warnings", None)
        body["meta"]["warnings"] = []
        if "generated_at" in body["meta"]:
            body["meta"]["generated_at"] = iso(self.now_s(), "%Y-%m-%dT%H:%M:%SZ")
        return body

    def _forecast(self, req: FakeRequest) -> FakeResponse:
        error = self._check(req)
        if error:
            return error
        horizon = int(req.q("horizon_hours") or 24)
        top = self.now_s() - self.now_s() % STEP
        times = range(top, top + horizon * 3600, STEP)
        return FakeResponse.json(
            self._series(
                "watttime_v3_forecast.json", req.q("region") or "", req.q("signal_type") or "", times
            )
        )

    def _historical(self, req: FakeRequest) -> FakeResponse:
        error = self._check(req)
        if error:
            return error
        start, end = parse(req.q("start")), parse(req.q("end"))
        if start is None or end is None or end < start:
            return FakeResponse.json({"error": "start and end are required"}, status=400)
        if end - start > HISTORICAL_MAX_S:
            return FakeResponse.json({"error": "time range too large, at most 32 days"}, status=400)
        first = start - start % STEP
        now = self.now_s()
        times = range(first, min(end + 1, now - now % STEP), STEP)  # end inclusive, nothing from the future
        return FakeResponse.json(
            self._series(
                "watttime_v3_historical.json", req.q("region") or "", req.q("signal_type") or "", times
            )
        )

    def _signal_index(self, req: FakeRequest) -> FakeResponse:
        error = self._check(req)
        if error:
            return error
        body = fixture("watttime_v3_signal_index.json")
        top = self.now_s() - self.now_s() % STEP
        body["data"] = [{"point_time": iso(top, "%Y-%m-%dT%H:%M:%SZ"), "value": self.signal_index_value}]
        body["meta"]["region"] = req.q("region")
        return FakeResponse.json(body)

    def _region_from_loc(self, req: FakeRequest) -> FakeResponse:
        error = self._check(req, needs_region=False)
        if error:
            return error
        lat, lon = float(req.q("latitude") or "nan"), float(req.q("longitude") or "nan")
        for (la, lo), region in self.locations.items():
            if abs(la - lat) < 0.01 and abs(lo - lon) < 0.01:
                body = fixture("watttime_v3_region_from_loc.json")
                body["region"] = region
                body["signal_type"] = req.q("signal_type") or "co2_moer"
                return FakeResponse.json(body)
        return FakeResponse.json({"error": "no region found for this location"}, status=404)
