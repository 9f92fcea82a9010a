"""A fake Electricity Maps v3 API: `/v3/carbon-intensity/{latest,history,past-range,forecast}`.

Bodies are built from the documented examples in tests/fixtures/api (same keys, same nesting), for
the times a test asks. Hourly intervals. Checks the `auth-token` header; unknown zones get 404; a
past-range longer than 10 days gets 400, as the API's limit says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.fakes._common import Clocked, fixture, iso, parse
from tests.fakes.http_server import FakeHttpServer, FakeRequest, FakeResponse

HOUR = 3600
PAST_RANGE_MAX_S = 10 * 24 * HOUR


def default_value(zone: str, t: int) -> float:
    """Deterministic g/kWh: a daily shape, different per zone."""
    return 100.0 + 5.0 * ((t // HOUR) % 24) + (len(zone) % 3) * 50.0


class FakeElectricityMaps(Clocked):
    def __init__(
        self,
        server: FakeHttpServer,
        *,
        token: str = "em-test-token-7f3a9c",
        zones: set[str] | None = None,
        value: Callable[[str, int], float | None] = default_value,
    ) -> None:
        self.server = server
        self.token = token
        self.zones = zones if zones is not None else {"DE", "FR", "NL", "GB", "US-CAL-CISO"}
        self.value = value
        self.estimated_hours: set[int] = set()  # epoch seconds of hour starts marked isEstimated
        self.forecast_access = True  # False: the token's plan has no forecast (403)
        self.emission_factor_type: str | None = None  # set: every entry says so (an account's default)
        server.route(r"/v3/carbon-intensity/latest", self._latest)
        server.route(r"/v3/carbon-intensity/history", self._history)
        server.route(r"/v3/carbon-intensity/past-range", self._past_range)
        server.route(r"/v3/carbon-intensity/forecast", self._forecast)

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v3"

    def settings_overrides(self) -> dict[str, Any]:
        """Keyword arguments for Settings(...) / load_settings(...) pointing at this fake."""
        return {"electricitymaps_token": self.token, "electricitymaps_url": self.base_url}

    def env(self) -> dict[str, str]:
        return {
            "CARBONSHIFT_ELECTRICITYMAPS_TOKEN": self.token,
            "CARBONSHIFT_ELECTRICITYMAPS_URL": self.base_url,
        }

    # ---- handlers -----------------------------------------------------------------------------
    def _check(self, req: FakeRequest) -> tuple[str, FakeResponse | None]:
        if req.header("auth-token") != self.token:
            return "", FakeResponse.json({"message": "Invalid auth-token"}, status=401)
        zone = req.q("zone") or ""
        if zone not in self.zones:
            return zone, FakeResponse.json({"error": f"Zone '{zone}' does not exist"}, status=404)
        return zone, None

    def _item(self, template: dict[str, Any], zone: str, t: int) -> dict[str, Any]:
        item = dict(template)
        item["datetime"] = iso(t, "%Y-%m-%dT%H:%M:%S.000Z")
        item["carbonIntensity"] = self.value(zone, t)
        if "zone" in item:
            item["zone"] = zone
        for key in ("updatedAt", "createdAt"):
            if key in item:
                item[key] = iso(self.now_s(), "%Y-%m-%dT%H:%M:%S.000Z")
        if self.emission_factor_type is not None:
            item["emissionFactorType"] = self.emission_factor_type
        if "isEstimated" in item:
            item["isEstimated"] = t in self.estimated_hours
            item["estimationMethod"] = "TIME_SLICER_AVERAGE" if t in self.estimated_hours else None
        return item

    def _latest(self, req: FakeRequest) -> FakeResponse:
        zone, error = self._check(req)
        if error:
            return error
        t = self.now_s() - self.now_s() % HOUR
        return FakeResponse.json(
            self._item(fixture("electricitymaps_v3_carbon-intensity_latest.json"), zone, t)
        )

    def _history(self, req: FakeRequest) -> FakeResponse:
        zone, error = self._check(req)
        if error:
            return error
        body = fixture("electricitymaps_v3_carbon-intensity_history.json")
        template = body["history"][0]
        top = self.now_s() - self.now_s() % HOUR
        body["zone"] = zone
        body["history"] = [self._item(template, zone, t) for t in range(top - 24 * HOUR, top, HOUR)]
        return FakeResponse.json(body)

    def _past_range(self, req: FakeRequest) -> FakeResponse:
        zone, error = self._check(req)
        if error:
            return error
        start, end = parse(req.q("start")), parse(req.q("end"))
        if start is None or end is None or end <= start:
            return FakeResponse.json({"error": "start and end are required, end after start"}, status=400)
        if end - start > PAST_RANGE_MAX_S:
            return FakeResponse.json(
                {"error": "Range is too long: at most 10 days at hourly granularity"}, status=400
            )
        body = fixture("electricitymaps_v3_carbon-intensity_past-range.json")
        template = body["data"][0]
        first = start - start % HOUR
        now = self.now_s()
        body["zone"] = zone
        body["data"] = [self._item(template, zone, t) for t in range(first, end, HOUR) if t < now]
        return FakeResponse.json(body)

    def _forecast(self, req: FakeRequest) -> FakeResponse:
        zone, error = self._check(req)
        if error:
            return error
        if not self.forecast_access:
            return FakeResponse.json({"message": "Your plan does not include forecasts"}, status=403)
        horizon = int(req.q("horizonHours") or 24)
        body = fixture("electricitymaps_v3_carbon-intensity_forecast.json")
        template = body["forecast"][0]
        top = self.now_s() - self.now_s() % HOUR
        body["zone"] = zone
        body["forecast"] = [
            {**template, "datetime": iso(t), "carbonIntensity": self.value(zone, t)}
            for t in range(top, top + horizon * HOUR, HOUR)
        ]
        body["updatedAt"] = iso(self.now_s())
        return FakeResponse.json(body)
