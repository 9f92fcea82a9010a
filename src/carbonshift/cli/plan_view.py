"""The plan as a table for people: aligned columns, units, the saving in kg and %, and what it means."""

from __future__ import annotations

import re
from collections.abc import Sequence

from carbonshift.advisor import Exclusion
from carbonshift.cli.render import table
from carbonshift.equivalents import CAR_SOURCE, km_by_car
from carbonshift.intensity.types import Kind
from carbonshift.planner.plan import Plan, PlanOption, SourceShare
from carbonshift.timeutil import isoformat_z


def _when(option: PlanOption) -> tuple[str, str]:
    return isoformat_z(option.start)[:16].replace("T", " "), isoformat_z(option.end)[:16].replace("T", " ")


_YEAR = re.compile(r"\b(?:19|20)\d{2}\b")
SOURCE_WIDTH = 22  # the data column names its source, cut to this many characters


def source_label(share: SourceShare) -> str:
    """One source as the data column shows it: kind, source, and for a table value its year, e.g.
    `static Green Algorithms 2020`, `forecast electricitymaps`; `STALE` marks a cached live value used
    past its freshness because the live fetch failed."""
    name = share.source.removeprefix("static:").split(" (")[0]
    if len(name) > SOURCE_WIDTH:
        name = name[: SOURCE_WIDTH - 1] + "…"
    words = [share.kind.value, name]
    if share.kind is Kind.STATIC:
        year = _YEAR.search(share.note)
        if year:
            words.append(year.group(0))
    if share.stale:
        words.append("STALE")
    return " ".join(words)


def _data_label(sources: tuple[SourceShare, ...]) -> str:
    labels: list[str] = []
    for s in sources:
        label = source_label(s)
        if label not in labels:
            labels.append(label)
    return " + ".join(labels)


def _kg(value: float) -> str:
    """Three significant figures for small jobs (grams matter there), thousands separators for big ones."""
    return f"{value:,.3f}" if abs(value) >= 1 else f"{value:.3g}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def excluded_lines(excluded: Sequence[Exclusion], explain: bool) -> list[str]:
    """One summary line (by rule, a few regions named each), or with `explain` one line per region."""
    if not excluded:
        return []
    if explain:
        return [f"left out: {e.region}: {e.rule}: {e.reason}" for e in excluded]
    by_rule: dict[str, list[str]] = {}
    for e in excluded:
        by_rule.setdefault(e.rule, []).append(e.region)
    parts = []
    # the surprising rules first: a region the user allowed but that lacks the hardware
    order = [
        "hardware",
        "placement.countries",
        "placement.exclude",
        "placement.regions",
        "placement.providers",
    ]
    for rule, refs in sorted(by_rule.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 0):
        named = ", ".join(refs[:3]) + (f" and {len(refs) - 3} more" if len(refs) > 3 else "")
        parts.append(f"{rule} {len(refs)} ({named})")
    return [f"left out: {len(excluded)} regions by " + "; ".join(parts) + " (--explain lists each with why)"]


def _options_table(plan: Plan, top: int) -> str:
    """The ranked options: the hardware column when the spec lists alternatives, and the embodied and
    total kg beside the operational kg when the plan carries its footprints."""
    fp = plan.footprints
    alternatives = fp is not None and fp.alternatives
    head = ["#", "region", "zone", *(["hardware"] if alternatives else []), "start (UTC)", "end (UTC)"]
    head += ["gCO2e/kWh", "kg CO2e", *(["embodied kg", "total kg"] if fp is not None else [])]
    head += ["saved kg", "saved", "basis", "data"]
    rows = []
    for rank, o in enumerate(plan.options[:top], start=1):
        start, end = _when(o)
        row: list[object] = [rank, f"{o.provider}:{o.region}", o.zone]
        if fp is not None and alternatives:
            row.append(fp.choice(o).label)
        row += [start, end + (f" ({len(o.chunks)} runs)" if len(o.chunks) > 1 else "")]
        row += [f"{o.mean_g_per_kwh:.1f}", _kg(o.kg_co2e)]
        if fp is not None:
            embodied = fp.embodied(o).kg_co2e
            row += [_kg(embodied), _kg(o.kg_co2e + embodied)]
        row += [_kg(o.savings_kg), _pct(o.savings_pct), o.basis or "", _data_label(o.sources)]
        rows.append(tuple(row))
    align = "rll" + ("l" if alternatives else "") + "llrr" + ("rr" if fp is not None else "") + "rrll"
    return table(head, rows, align)


def render_plan(
    plan: Plan, top: int, notices: list[str], excluded: Sequence[Exclusion] = (), explain: bool = False
) -> str:
    energy = plan.it_energy
    power = energy.power
    if power.measured_w:
        power_text = f"{power.measured_w:,.0f} W measured (power_watts)"
    else:
        power_text = (
            f"{power.it_w:,.0f} W IT power (GPU {power.gpu_w:,.0f} W, CPU {power.cpu_w:,.0f} W, "
            f"memory {power.memory_w:,.0f} W)"
        )
    hours = plan.duration_s / 3600
    lines = [
        f"job {plan.job}: {hours:g} h at {power_text} = {plan.energy_kwh:,.2f} kWh before PUE",
        f"window {isoformat_z(plan.earliest)} .. {isoformat_z(plan.deadline)} (must finish by), "
        f"{plan.signal.value} signal" + (", interruptible" if plan.interruptible else ""),
    ]
    b = plan.baseline
    basis = "baseline" if b.basis == "spec" else "baseline (best region, started at earliest)"
    fp = plan.footprints
    embodied_text = ""
    if fp is not None:
        base_embodied = fp.baseline_embodied(b.provider, b.region).kg_co2e
        embodied_text = f" + {_kg(base_embodied)} embodied = {_kg(b.kg_co2e + base_embodied)} total"
    lines.append(
        f"{basis}: {b.provider}:{b.region} from {isoformat_z(b.start)}, {b.mean_g_per_kwh:.1f} gCO2e/kWh, "
        f"{b.energy.kwh:,.2f} kWh (PUE {b.energy.pue:.2f}) -> {_kg(b.kg_co2e)} kg CO2e{embodied_text}"
    )
    if fp is not None and fp.alternatives:
        shown = "; ".join(f"{c.index}: {c.label}" for c in fp.choices)
        lines.append(
            f"hardware: {shown} (0 is the spec's own, the baseline's); ranked by total kg CO2e "
            "(operational + embodied)"
        )
    lines.append("")
    lines.append(_options_table(plan, top))
    if len(plan.options) > top:
        lines.append(f"... {len(plan.options) - top} more (--top N, or --format json for all)")
    best = plan.best
    lines.append("")
    if best.savings_kg > 0:
        lines.append(
            f"best: {best.provider}:{best.region} from {isoformat_z(best.start)} saves {_kg(best.savings_kg)} kg "
            f"CO2e ({_pct(best.savings_pct)}) against the baseline, about {km_by_car(best.savings_kg):,.1f} km "
            f"by car ({CAR_SOURCE})"
        )
    else:
        lines.append(
            f"best: {best.provider}:{best.region} from {isoformat_z(best.start)}: no saving against the baseline"
        )
    for note in plan.notes:
        lines.append(f"note: {note}")
    for notice in notices:
        lines.append(f"data: {notice}")
    lines.extend(excluded_lines(excluded, explain))
    return "\n".join(lines)
