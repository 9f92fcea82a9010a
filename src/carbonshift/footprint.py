"""A run's whole footprint: operational plus embodied emissions, and the SCI score per functional unit.

The Software Carbon Intensity (Green Software Foundation; ISO/IEC 21031:2024) is
`SCI = (O + M) per R` with `O = E x I`: operational emissions (energy, PUE included, times the grid's
intensity) plus the embodied share of the hardware, divided by the number of functional units the run
produced. Pure arithmetic; no I/O, usable by the planner and the tracker alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def sci(operational_kg: float, embodied_kg: float, functional_unit_count: float) -> float:
    """kgCO2e per functional unit: (O + M) / R. Raises ValueError for a count that is not a positive
    finite number or negative emissions (a score must never be silently infinite or negative)."""
    if not math.isfinite(functional_unit_count) or functional_unit_count <= 0:
        raise ValueError(f"functional_unit_count must be a positive number, got {functional_unit_count!r}")
    if operational_kg < 0 or embodied_kg < 0:
        raise ValueError("emissions must not be negative")
    return (operational_kg + embodied_kg) / functional_unit_count


@dataclass(frozen=True, slots=True)
class Footprint:
    """Operational and embodied kgCO2e of one run, with the SCI score when a functional unit is named."""

    operational_kg_co2e: float
    embodied_kg_co2e: float
    unit_name: str | None = None
    unit_count: float | None = None

    @property
    def total_kg_co2e(self) -> float:
        return self.operational_kg_co2e + self.embodied_kg_co2e

    @property
    def sci_kg_co2e(self) -> float | None:
        """kgCO2e per functional unit, or None when none is named."""
        if self.unit_count is None:
            return None
        return sci(self.operational_kg_co2e, self.embodied_kg_co2e, self.unit_count)

    def sci_dict(self) -> dict[str, object] | None:
        """The report's `sci` object: the score with its unit spelled out (`kg CO2e per epoch`)."""
        score = self.sci_kg_co2e
        if score is None:
            return None
        return {
            "kg_co2e_per_unit": score,
            "g_co2e_per_unit": score * 1000.0,
            "functional_unit": {"name": self.unit_name, "count": self.unit_count},
            "formula": "(operational + embodied) / count",
        }


__all__ = ["Footprint", "sci"]
