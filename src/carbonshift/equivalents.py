"""Everyday equivalents, so a saving in kg CO2e means something to a person.

Car: 107.5 gCO2/km, the average of new passenger cars registered in the EU in 2020 (European
Environment Agency), as tabulated by carbontracker (MIT) — the same kind of figure CodeCarbon and
carbontracker show their users.
"""

from __future__ import annotations

CAR_G_PER_KM = 107.5
CAR_SOURCE = "EEA 2020 average new EU car, 107.5 gCO2/km"


def km_by_car(kg_co2e: float) -> float:
    return kg_co2e * 1000.0 / CAR_G_PER_KM
