"""The ledger's figures, by name: the shape `Scheduler.totals`, `GET /api/v1/totals`, the dashboard
and `carbonshift report` share. A module of its own, importing nothing, so the CLI can name them
without loading the scheduler (or its database driver).

`kg_co2e` is the operational part of a run's footprint (its energy, PUE included, times the grid's
intensity), `embodied_kg_co2e` the hardware's share of its manufacture and disposal (SCI's M) and
`total_kg_co2e` the two together; `planned`, `baseline` and `saved` are operational.
"""

FIGURES = (
    "energy_kwh",
    "kg_co2e",
    "embodied_kg_co2e",
    "total_kg_co2e",
    "planned_kg_co2e",
    "baseline_kg_co2e",
    "saved_kg_co2e",
)
