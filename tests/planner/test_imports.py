"""Planning reads the instance-type catalog from `carbonshift.catalog`, never the provider adapters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
from datetime import UTC, datetime
from pathlib import Path

from carbonshift.advisor import advise_many
from carbonshift.catalog import load_catalog
from carbonshift.clock import FixedClock
from carbonshift.config import load_settings
from carbonshift.config.jobspec import load_jobspec
from carbonshift.intensity.service import IntensityService
from carbonshift.intensity.sources.files import FileSource

repo = Path(sys.argv[1])
now = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
settings = load_settings(repo / "examples" / "config" / "carbonshift.yaml")
catalog = load_catalog(locations=settings.locations)
files = FileSource({"ES": repo / "examples" / "config" / "data" / "es-scenario.csv"})
service = IntensityService([files], cache=None, clock=FixedClock(now))
specs = [load_jobspec(p, now=now) for p in sorted((repo / "examples").glob("*.yaml"))]
advice = advise_many(specs, catalog=catalog, service=service, now=now)
assert advice and all(a.plan.options for a in advice)
print(sorted(m for m in sys.modules if m.startswith("carbonshift.providers")))
"""


def test_planning_does_not_import_providers() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(REPO)], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout
