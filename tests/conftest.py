"""Fixtures shared by every test package.

The local fake APIs (Electricity Maps, WattTime, GB Carbon Intensity, Carbon Aware SDK; loopback only)
live in tests/fakes; see tests/fakes/conftest_plugin.py for how to use them.
"""

from tests.fakes.conftest_plugin import (
    dead_url,
    fake_carbon_aware_sdk,
    fake_electricitymaps,
    fake_http,
    fake_ukci,
    fake_watttime,
)

__all__ = [
    "dead_url",
    "fake_carbon_aware_sdk",
    "fake_electricitymaps",
    "fake_http",
    "fake_ukci",
    "fake_watttime",
]
