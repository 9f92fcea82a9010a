"""`plan --plot FILE.png`: the candidates' intensity over the window, the chosen run shaded.

matplotlib is an optional extra (`pip install 'carbonshift[plot]'`): it is heavy, and only this
output needs it, so it is imported here and only when asked for.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from carbonshift.advisor import Advice
from carbonshift.errors import UserInputError
from carbonshift.timeutil import from_epoch_s


def write_plot(advice: Advice, path: Path, top: int) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserInputError(
            "--plot", "needs matplotlib: pip install 'carbonshift[plot]' (or the dev extra)"
        ) from None
    if path.suffix.lower() != ".png":
        raise UserInputError("--plot", f"{path}: write a .png file")
    plan = advice.plan
    lo, hi = plan.earliest, plan.deadline
    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=110)
    shown = list(plan.options[:top])
    refs = [o.ref for o in shown]
    base_ref = f"{plan.baseline.provider}:{plan.baseline.region}"
    if base_ref not in refs:
        refs.append(base_ref)
    for i, ref in enumerate(refs):
        series = advice.series[ref]
        edges = np.clip(series.edges_s, int(lo.timestamp()), int(hi.timestamp()))
        times = [_num(from_epoch_s(int(t))) for t in edges]
        values = np.append(series.values, series.values[-1])
        label = f"{ref} (best)" if i == 0 else (f"{ref} (baseline)" if ref == base_ref else ref)
        ax.step(
            times,
            values,
            where="post",
            label=label,
            linewidth=2.2 if i == 0 else 1.2,
            zorder=3 if i == 0 else 2,
            linestyle="--" if ref == base_ref else "-",
        )
    for a, b in plan.best.chunks:
        ax.axvspan(_num(a), _num(b), color="tab:green", alpha=0.18, zorder=1)
    ax.set_xlim(_num(lo), _num(hi))
    ax.set_ylabel(f"gCO2e/kWh ({plan.signal.value})")
    ax.set_xlabel("time (UTC)")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))  # type: ignore[no-untyped-call]
    best = plan.best
    saving = "" if best.savings_pct is None else f", {best.savings_pct:.1f}% less than the baseline"
    ax.set_title(f"{plan.job}: best run shaded ({best.ref}, {best.kg_co2e:.3f} kg CO2e{saving})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.autofmt_xdate()
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as exc:
        raise UserInputError("--plot", f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)


def _num(t: datetime) -> float:
    import matplotlib.dates as mdates

    return float(mdates.date2num(t))  # type: ignore[no-untyped-call]
