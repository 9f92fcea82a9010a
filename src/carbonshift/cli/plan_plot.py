"""`plan --plot FILE.png`: the candidates' intensity over the window, the chosen run shaded.

What a reader must not misread: regions on one grid zone have the very same series, so they are drawn
once with every region named (no line hidden under another); a static table value is an annual
average, not a flat forecast, and says so; the y axis starts at 0, so a 10% dip looks like 10%; ticks
fall on whole hours; "now" and the deadline are marked.

matplotlib is an optional extra (`pip install 'carbonshift[plot]'`): it is heavy, and only this
output needs it, so it is imported here and only when asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from carbonshift.advisor import Advice
from carbonshift.errors import UserInputError
from carbonshift.intensity.types import IntensitySeries, Kind
from carbonshift.timeutil import from_epoch_s

# hours between ticks, the smallest that keeps at most MAX_TICKS of them on the axis
TICK_STEPS_H = (1, 2, 3, 4, 6, 12, 24, 48, 72, 168)
MAX_TICKS = 12


@dataclass(frozen=True, slots=True)
class Line:
    """One drawn series: every region whose series is this one, with their roles in the plan."""

    zone: str
    refs: tuple[str, ...]
    roles: tuple[str, ...]  # "best", "baseline" or "" per ref
    series: IntensitySeries

    @property
    def static(self) -> bool:
        return bool(self.series.provenances) and all(p.kind is Kind.STATIC for p in self.series.provenances)

    @property
    def label(self) -> str:
        names = ", ".join(
            f"{r} ({role})" if role else r for r, role in zip(self.refs, self.roles, strict=True)
        )
        shared = f"zone {self.zone}" if len(self.refs) > 1 else self.zone
        label = f"{names} — {shared}"
        if self.static:
            source = self.series.provenances[0].source
            label += f": annual average ({source.removeprefix('static:')})"
        return label


def lines_of(advice: Advice, top: int) -> list[Line]:
    """The series to draw: the best `top` options and the baseline, one line per distinct series."""
    plan = advice.plan
    refs = list(dict.fromkeys(o.ref for o in plan.options[:top]))  # a region twice: two hardware options
    base_ref = f"{plan.baseline.provider}:{plan.baseline.region}"
    if base_ref not in refs:
        refs.append(base_ref)
    best_ref = plan.best.ref
    by_zone: dict[tuple[str, bytes, bytes], list[str]] = {}
    for ref in refs:
        s = advice.series[ref]
        key = (s.zone, s.edges_s.tobytes(), s.values.tobytes())  # same data, whatever the object
        by_zone.setdefault(key, []).append(ref)
    out = []
    for members in by_zone.values():
        roles = tuple("best" if r == best_ref else ("baseline" if r == base_ref else "") for r in members)
        s = advice.series[members[0]]
        out.append(Line(zone=s.zone, refs=tuple(members), roles=roles, series=s))
    return out


def tick_step_h(span_s: float) -> int:
    hours = span_s / 3600
    for step in TICK_STEPS_H:
        if hours / step <= MAX_TICKS:
            return step
    return TICK_STEPS_H[-1]


def build_figure(advice: Advice, top: int, now: datetime) -> Any:
    """The matplotlib Figure (Agg backend): separate from writing it so tests can read what it shows."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserInputError(
            "--plot", "needs matplotlib: pip install 'carbonshift[plot]' (or the dev extra)"
        ) from None
    plan = advice.plan
    lo, hi = min(plan.earliest, now), plan.deadline
    fig, ax = plt.subplots(figsize=(11, 6.5), dpi=110)
    for line in lines_of(advice, top):
        s = line.series
        edges = np.clip(s.edges_s, int(lo.timestamp()), int(hi.timestamp()))
        times = [_num(from_epoch_s(int(t))) for t in edges]
        values = np.append(s.values, s.values[-1])
        best = "best" in line.roles
        ax.step(
            times,
            values,
            where="post",
            label=line.label,
            linewidth=2.2 if best else 1.2,
            zorder=3 if best else 2,
            linestyle=":" if line.static else ("--" if "baseline" in line.roles and not best else "-"),
        )
    for a, b in plan.best.chunks:
        ax.axvspan(_num(a), _num(b), color="tab:green", alpha=0.18, zorder=1, label="_best run")
    ax.axvline(_num(now), color="black", linestyle="-.", linewidth=1, label="now", gid="now")
    ax.axvline(_num(hi), color="tab:red", linestyle="-.", linewidth=1, label="deadline", gid="deadline")
    ax.set_xlim(_num(lo), _num(hi))
    ax.set_ylim(bottom=0)
    ax.set_ylabel(f"gCO2e/kWh ({plan.signal.value})")
    ax.set_xlabel("time (UTC)")
    step = tick_step_h((hi - lo).total_seconds())
    hours = list(range(0, 24, step)) if step <= 24 else [0]
    locator = mdates.HourLocator(byhour=hours) if step <= 24 else mdates.DayLocator(interval=step // 24)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))  # type: ignore[no-untyped-call]
    best_option = plan.best
    saving = (
        "" if best_option.savings_pct is None else f", {best_option.savings_pct:.1f}% less than the baseline"
    )
    ax.set_title(
        f"{plan.job}: best run shaded ({best_option.ref}, {best_option.kg_co2e:.3f} kg CO2e{saving})"
    )
    ax.grid(alpha=0.3)
    # below the axes, so long region lists never squeeze the chart
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=1, frameon=False)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def write_plot(advice: Advice, path: Path, top: int, now: datetime) -> None:
    if path.suffix.lower() != ".png":
        raise UserInputError("--plot", f"{path}: write a .png file")
    fig = build_figure(advice, top, now)
    import matplotlib.pyplot as plt

    try:
        fig.savefig(path)
    except OSError as exc:
        raise UserInputError("--plot", f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)


def _num(t: datetime) -> float:
    import matplotlib.dates as mdates

    return float(mdates.date2num(t))  # type: ignore[no-untyped-call]
