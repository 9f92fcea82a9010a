"""A fake Carbon Aware SDK WebAPI: `/emissions/bylocations` and `/emissions/forecasts/current`.

Bodies follow the documented examples in tests/fixtures/api. Observed data comes at 5-minute steps
with a .NET TimeSpan `duration`; the current forecast runs 24 h from now in 5-minute points (duration
in minutes). Like the real WebAPI, a `dataStartAt`/`dataEndAt` outside the forecast's own range gets
400, and an unknown location gets 400 naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.fakes._common import Clocked, fixture, iso, parse
from tests.fakes.http_server import FakeHttpServer, FakeRequest, FakeResponse

STEP = 300
FORECAST_S = 24 * 3600


def default_value(location: str, t: int) -> float:
    return 300.0 + 2.0 * ((t // STEP) % 24)


class FakeCarbonAwareSdk(Clocked):
    def __init__(
        self,
        server: FakeHttpServer,
        *,
        locations: set[str] | None = None,
        value: Callable[[str, int], float | None] = default_value,
    ) -> None:
        self.server = server
        self.locations = locations if locations is not None else {"eastus", "westus", "northeurope"}
        self.value = value
        server.route(r"/emissions/bylocations", self._bylocations)
        server.route(r"/emissions/forecasts/current", self._forecast)

    @property
    def base_url(self) -> str:
        return self.server.url

    def settings_overrides(self, signal: str = "marginal") -> dict[str, Any]:
        return {"carbon_aware_sdk_url": self.base_url, "carbon_aware_sdk_signal": signal}

    def env(self, signal: str = "marginal") -> dict[str, str]:
        return {
            "CARBONSHIFT_CARBON_AWARE_SDK_URL": self.base_url,
            "CARBONSHIFT_CARBON_AWARE_SDK_SIGNAL": signal,
        }

    @staticmethod
    def _problem(detail: str) -> FakeResponse:
        return FakeResponse.json(
            {
                "type": "https://tools.ietf.org/html/rfc7231#section-6.5.1",
                "title": "ArgumentException",
                "status": 400,
                "detail": detail,
            },
            status=400,
        )

    def _location(self, req: FakeRequest) -> tuple[str, FakeResponse | None]:
        loc = req.q("location") or ""
        if loc not in self.locations:
            return loc, self._problem(f"Unknown location: '{loc}'")
        return loc, None

    def _bylocations(self, req: FakeRequest) -> FakeResponse:
        loc, error = self._location(req)
        if error:
            return error
        now = self.now_s()
        start = parse(req.q("time")) or now - 24 * 3600
        end = parse(req.q("toTime")) or now
        template = fixture("casdk_webapi_emissions_bylocations_best_response.json")[0]
        items = [
            {
                **template,
                "location": loc,
                "time": iso(t),
                "rating": self.value(loc, t),
                "duration": "00:05:00",
            }
            for t in range(start - start % STEP, min(end, now), STEP)
        ]
        return FakeResponse.json(items)

    def _forecast(self, req: FakeRequest) -> FakeResponse:
        loc, error = self._location(req)
        if error:
            return error
        now = self.now_s()
        first = now - now % STEP
        last = first + FORECAST_S - STEP
        lo, hi = parse(req.q("dataStartAt")), parse(req.q("dataEndAt"))
        for name, t in (("dataStartAt", lo), ("dataEndAt", hi)):
            if t is not None and not first <= t <= last + STEP:
                return self._problem(f"{name} must be within the forecast data point timestamps")
        body = fixture("casdk_webapi_emissions_forecasts_current_response.json")
        forecast = body[0]
        template = forecast["forecastData"][0]
        points = [
            {
                **template,
                "location": loc,
                "timestamp": iso(t),
                "duration": STEP // 60,
                "value": self.value(loc, t),
            }
            for t in range(first, last + STEP, STEP)
            if (lo is None or t + STEP > lo) and (hi is None or t < hi)
        ]
        forecast.update(
            {
                "requestedAt": iso(now),
                "generatedAt": iso(first),
                "location": loc,
                "dataStartAt": iso(lo if lo is not None else first),
                "dataEndAt": iso(hi if hi is not None else last),
                "forecastData": points,
                "optimalDataPoints": [min(points, key=lambda p: p["value"])] if points else [],
            }
        )
        return FakeResponse.json([forecast])
