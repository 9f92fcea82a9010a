"""The tracker: sources chosen, sampling started, and at the end one report built from the interval
log, the job's shares and the intensity of the zone over exactly the run.

Used by `carbonshift track` (a child process), `carbonshift run` (the same, after waiting for the
planned start) and the Python API (`carbonshift.track`, the calling process itself).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from carbonshift import __version__, runtime
from carbonshift.catalog import Catalog
from carbonshift.catalog.embodied import EmbodiedEstimate
from carbonshift.clock import FixedClock, SystemClock
from carbonshift.config import Settings, load_settings
from carbonshift.config.jobspec import FunctionalUnit
from carbonshift.errors import CarbonshiftError
from carbonshift.intensity.service import IntensityService
from carbonshift.tracker import emissions, location, metadata
from carbonshift.tracker.attribution import ProcessTree
from carbonshift.tracker.embodied import run_embodied, run_footprint, which_hardware
from carbonshift.tracker.location import Place
from carbonshift.tracker.power import Selection, select_sources
from carbonshift.tracker.prometheus import Metrics
from carbonshift.tracker.report import Planned, TrackReport
from carbonshift.tracker.sampler import EnergyLog, Sampler
from carbonshift.tracker.sources.base import Component, PowerSource

log = logging.getLogger(__name__)

J_PER_KWH = 3.6e6


class Tracker:
    """Measure a job: `start()`, `attach(pid)` for a child (the Python API tracks its own process),
    then `stop(exit_code)` returns the report (and writes it, the CSV row and metrics, as configured).

    Bad input (an unknown `--region`) raises UserInputError from the constructor, before anything runs.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        region: str | None = None,
        zone: str | None = None,
        place: Place | None = None,
        command: Sequence[str] = (),
        pid: int | None = None,
        interval_s: float | None = None,
        planned: Planned | None = None,
        sources: Sequence[PowerSource] | None = None,
        nvml: Any | None = None,
        catalog: Catalog | None = None,
        service: IntensityService | None = None,
        output_dir: Path | None = None,
        report_path: Path | None = None,
        write_outputs: bool = True,
        run_id: str | None = None,
        instance_type: str | None = None,
        functional_unit: FunctionalUnit | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        ts = self.settings.tracker
        self.run_id = run_id or str(uuid.uuid4())
        self.command = list(command)
        self.planned = planned
        self.instance_type = instance_type  # for embodied carbon; else the cloud's metadata, else the host
        self.functional_unit = functional_unit  # SCI's R: the report then gives kg CO2e per unit
        self.interval_s = interval_s or ts.interval_s
        self._catalog = catalog
        self._service = service
        self.output_dir = output_dir or ts.output_dir or self.settings.resolved_data_dir() / "runs"
        self.report_path = report_path
        self.write_outputs = write_outputs
        self.warnings: list[str] = []
        self.place = place or location.explicit_place(self.settings, self.catalog, region=region, zone=zone)
        if self.place is not None and self.place.warning:  # a place assumed by the caller (`run`)
            self.warnings.append(self.place.warning)
        self._cloud: metadata.CloudPlace | None = None
        self._cloud_thread: threading.Thread | None = None
        if sources is None:
            self.selection = select_sources(ts, nvml=nvml)
        else:
            self.selection = Selection(list(sources))
        self.warnings += self.selection.warnings
        self.sampler: Sampler | None = None
        self.job = ProcessTree(pid, exclude_cpu_s=self._tracker_cpu)
        pue = self.place.pue if self.place is not None else 1.0
        self.metrics: Metrics | None = None
        if ts.prometheus_file is not None or ts.prometheus_port is not None:
            self.metrics = Metrics(self.run_id, _job_label(self.command), pue, ts.attribution)
        self.metrics_port: int | None = None
        self.report: TrackReport | None = None

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = runtime.build_catalog(self.settings)
        return self._catalog

    def _tracker_cpu(self) -> float:
        return self.sampler.overhead_cpu_s if self.sampler is not None else 0.0

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> Tracker:
        ts = self.settings.tracker
        if self.place is None and ts.detect_cloud:
            self._cloud_thread = threading.Thread(target=self._detect, name="carbonshift-detect", daemon=True)
            self._cloud_thread.start()
        if self.metrics is not None:
            if ts.prometheus_file is not None:
                self.metrics.to_file(ts.prometheus_file)
            if ts.prometheus_port is not None:
                self.metrics_port = self.metrics.serve(ts.prometheus_port)
        self.sampler = Sampler(
            self.selection.sources,
            self.job,
            self.interval_s,
            on_tick=self.metrics.on_tick if self.metrics is not None else None,
        )
        self.sampler.start()
        return self

    def attach(self, pid: int) -> None:
        if self.sampler is not None:
            self.sampler.attach(pid)
        else:
            self.job.attach(pid)

    def _detect(self) -> None:
        ts = self.settings.tracker
        self._cloud = metadata.detect(
            aws_url=ts.aws_metadata_url,
            gcp_url=ts.gcp_metadata_url,
            azure_url=ts.azure_metadata_url,
            timeout_s=ts.metadata_timeout_s,
        )

    def stop(
        self,
        exit_code: int | None = None,
        *,
        final_job_cpu_s: float | None = None,
        terminated_by: str | None = None,
    ) -> TrackReport:
        if self.sampler is None:
            raise RuntimeError("tracker was not started")
        energy_log = self.sampler.stop(final_job_cpu_s)
        place = self._final_place()
        report = self._build(energy_log, place, exit_code, terminated_by)
        if self.metrics is not None:
            self.metrics.finish(report.to_dict())
            self.metrics.close()
        if self.write_outputs:
            from carbonshift.tracker.outputs import write_outputs

            write_outputs(report, self.settings, self.output_dir, self.report_path)
        self.report = report
        return report

    def abort(self) -> None:
        """Stop sampling without a report (the command could not be started)."""
        if self.sampler is not None:
            self.sampler.stop()
            self.sampler = None
        if self.metrics is not None:
            self.metrics.close()

    def _final_place(self) -> Place:
        """The place named up front, else the cloud region detected while the job ran (waited for here,
        at the end), else the assumed one: the time zone's country or the world average, with a warning."""
        if self.place is not None:
            return self.place
        if self._cloud_thread is not None:
            self._cloud_thread.join(timeout=5 * self.settings.tracker.metadata_timeout_s + 1)
        cloud = self._cloud
        if cloud is not None:
            found = location.from_cloud(cloud, self.catalog, self.settings)
            if found is not None:
                return found
            self.warnings.append(
                f"instance metadata says {cloud.provider}:{cloud.region}, which the catalog does not know"
            )
        assumed = location.assumed_place(self.settings, self.catalog)
        if assumed.warning:
            self.warnings.append(assumed.warning)
        return assumed

    # ---- the report ---------------------------------------------------------------------------
    def _embodied(
        self, place: Place, host: dict[str, Any], duration_s: float
    ) -> tuple[EmbodiedEstimate, dict[str, Any]]:
        cloud = self._cloud
        hw = which_hardware(
            explicit=self.instance_type,
            place_provider=_place_provider(place),
            cloud_provider=cloud.provider if cloud is not None else None,
            cloud_instance_type=cloud.instance_type if cloud is not None else None,
            host=host,
        )
        estimate, info = run_embodied(hw, duration_s)
        if self.instance_type and estimate.source.startswith("ccf-method (host"):
            self.warnings.append(
                f"--instance-type {self.instance_type}: not in the embodied table (say provider:type, "
                "e.g. aws:p4d.24xlarge, where no cloud region is given); embodied carbon from the host's "
                "hardware instead"
            )
        return estimate, info

    def _build(
        self, elog: EnergyLog, place: Place, exit_code: int | None, terminated_by: str | None
    ) -> TrackReport:
        ts = self.settings.tracker
        sampler = self.sampler
        assert sampler is not None
        t0 = np.asarray(elog.t0, dtype=np.float64)
        t1 = np.asarray(elog.t1, dtype=np.float64)
        if len(t0) == 0:  # stopped within the same instant it started
            t0 = t1 = np.array([sampler.started_wall])
        n = len(t0)
        pue = place.pue
        machine = {c: _arr(elog.machine_j[c], n) for c in Component}
        shares = {
            Component.CPU: _arr(elog.cpu_share, n),
            Component.RAM: _arr(elog.ram_share, n),
            Component.GPU: np.ones(n),
        }
        if ts.attribution == "machine":
            shares = {c: np.ones(n) for c in Component}
        job_kwh = {c: machine[c] * shares[c] * pue / J_PER_KWH for c in Component}
        machine_kwh = {c: machine[c] * pue / J_PER_KWH for c in Component}
        job_total = sum(job_kwh.values(), np.zeros(n))
        machine_total = sum(machine_kwh.values(), np.zeros(n))
        energy = float(job_total.sum())
        duration = float(sum(elog.dt))

        kg: float | None = None
        mean: float | None = None
        machine_kg: float | None = None
        intensity_sources: list[dict[str, Any]] = []
        # the run is over: every second of it is history (the service counts in whole seconds, so
        # "now" is the end rounded up, never more than a second ahead of the clock)
        done = max(SystemClock().now(), from_epoch_s_float(float(np.ceil(t1[-1]))))
        service = self._service or runtime.build_service(self.settings, clock=FixedClock(done))
        try:
            series = emissions.fetch_series(
                service, place.zone, float(t0[0]), float(t1[-1]), self.settings.signal
            )
        except CarbonshiftError as exc:
            self.warnings.append(f"no intensity for zone {place.zone.id}, so no emissions: {exc}")
        else:
            charged = emissions.charge(series, t0, t1, job_total)
            kg, mean, intensity_sources = charged.kg_co2e, charged.mean_g_per_kwh, charged.sources
            machine_kg = float(np.dot(machine_total, charged.g_per_kwh)) / 1000.0
        self.warnings += [f"intensity: {notice}" for notice in service.notices]

        cpu_job_s = elog.job_cpu_s
        weights = machine[Component.CPU]
        job_cpu_share = (
            # what the process tree used, whichever mode charges it (machine mode still says it)
            float(np.dot(weights, _arr(elog.cpu_share, n)) / weights.sum()) if weights.sum() > 0 else None
        )
        attribution = {
            "mode": ts.attribution,
            "job_cpu_s": round(cpu_job_s, 3),
            "job_cpu_share": None if job_cpu_share is None else round(job_cpu_share, 4),
            "basis": "CPU energy by the process tree's share of the machine's busy CPU time (idle draw "
            "included); RAM by its share of resident memory; GPUs wholly"
            if ts.attribution == "process"
            else "the whole machine is charged to the job",
            "machine": {
                "energy_kwh": float(machine_total.sum()),
                "energy_by_component_kwh": {c.value: float(machine_kwh[c].sum()) for c in Component},
                "kg_co2e": machine_kg,
            },
        }
        power_sources = []
        for source in self.selection.sources:
            entry = source.info().to_dict()
            fallback = self.selection.fallbacks.get(source.component)
            if fallback:
                entry["instead_of"] = fallback
            power_sources.append(entry)
        for component, reason in self.selection.fallbacks.items():
            if not any(s.component is component for s in self.selection.sources):
                power_sources.append(
                    {"component": component.value, "name": "none", "kind": "none", "detail": reason}
                )
        overhead = sampler.overhead_cpu_s
        host = dict(self.selection.host)
        gpu_devices = [
            d for s in self.selection.sources if s.component is Component.GPU for d in s.info().devices
        ]
        if gpu_devices:
            models = Counter(d.split(": ", 1)[-1].split(" (", 1)[0] for d in gpu_devices)
            host["gpu_model"] = ", ".join(f"{k} x {m}" for m, k in models.items())
        durations = t1 - t0
        if durations.sum() > 0:
            host["cpu_utilization_percent"] = round(
                100 * float(np.dot(durations, _arr(elog.utilisation, n)) / durations.sum()), 2
            )
            used = float(np.dot(durations, _arr(elog.ram_used_bytes, n)) / durations.sum())
            host["ram_used_gb"] = round(used / 1e9, 3)
            if elog.memory_total_bytes:
                host["ram_utilization_percent"] = round(100 * used / elog.memory_total_bytes, 2)
        embodied, embodied_info = self._embodied(place, host, duration)
        footprint = run_footprint(kg, embodied.kg_co2e, self.functional_unit)
        return TrackReport(
            run_id=self.run_id,
            command=self.command,
            start=from_epoch_s_float(float(t0[0])),
            end=from_epoch_s_float(float(t1[-1])),
            duration_s=duration,
            exit_code=exit_code,
            terminated_by=terminated_by,
            energy_kwh=energy,
            energy_by_component_kwh={c.value: float(job_kwh[c].sum()) for c in Component},
            it_energy_kwh=energy / pue,
            pue=pue,
            kg_co2e=kg,
            embodied_kg_co2e=embodied.kg_co2e,
            total_kg_co2e=None if footprint is None else footprint.total_kg_co2e,
            embodied=embodied_info,
            sci=None if footprint is None else footprint.sci_dict(),
            mean_g_per_kwh=mean,
            signal=self.settings.signal.value,
            zone=place.zone.id,
            location=place.to_dict(),
            intensity_sources=intensity_sources,
            power_sources=power_sources,
            attribution=attribution,
            tracker={
                "version": __version__,
                "interval_s": self.interval_s,
                "samples": len(elog),
                "overhead_cpu_s": round(overhead, 4),
                "overhead_share_of_one_core": round(overhead / duration, 5) if duration > 0 else None,
                "metrics_port": self.metrics_port,
            },
            planned=self.planned,
            warnings=list(dict.fromkeys(self.warnings)),
            host=host,
            mean_power_w={
                c.value: float(job_kwh[c].sum()) * J_PER_KWH / duration if duration > 0 else 0.0
                for c in Component
            },
        )


def _place_provider(place: Place) -> str | None:
    return place.region.provider if place.region is not None else None


def _arr(values: list[float], n: int) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64)
    return out if len(out) == n else np.zeros(n)


def from_epoch_s_float(t: float) -> datetime:
    """A datetime with microseconds (from_epoch_s truncates to the second, fine for series edges but
    not for a run's start and end)."""
    return datetime.fromtimestamp(t, tz=UTC)


def _job_label(command: Sequence[str]) -> str:
    """A short, secret-free name for metrics labels: the program's base name only."""
    return Path(command[0]).name if command else "python"
