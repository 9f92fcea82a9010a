"""What the scheduler's parts share: settings, the store, the clock, the providers, and the
infrastructure parts (provider calls, timers, leadership, report tokens, planning, chunks).

Built once by `Scheduler` (core.py) and handed to each part, so a part names what it uses and no
part reaches into another through the facade.
"""

from __future__ import annotations

from dataclasses import dataclass

from carbonshift.clock import Clock
from carbonshift.config import Settings
from carbonshift.providers.base import Provider
from carbonshift.scheduler.chunks import Chunks
from carbonshift.scheduler.leadership import Leadership
from carbonshift.scheduler.lifecycle import Store
from carbonshift.scheduler.planning import Plans
from carbonshift.scheduler.pool import ProviderCalls
from carbonshift.scheduler.settings import SchedulerSettings
from carbonshift.scheduler.timers import Timers
from carbonshift.scheduler.tokens import ReportTokens

__all__ = ["Context"]


@dataclass(frozen=True)
class Context:
    settings: Settings
    store: Store
    clock: Clock
    providers: dict[str, Provider]
    calls: ProviderCalls
    timers: Timers
    leadership: Leadership
    tokens: ReportTokens
    plans: Plans
    chunks: Chunks

    @property
    def cfg(self) -> SchedulerSettings:
        return self.settings.scheduler
