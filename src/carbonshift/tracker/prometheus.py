"""Prometheus text-format metrics for a tracked job: a file (for node_exporter's textfile collector)
and/or a tiny /metrics endpoint on 127.0.0.1 while the job runs. Loopback only: a job's numbers are
nobody else's business unless the user forwards them.

Energy counts up during the run; emissions appear at the end, when the intensity over the run is known.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from carbonshift.tracker.sampler import EnergyLog
from carbonshift.tracker.sources.base import Component

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FILE_EVERY_S = 15.0


def _label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    def __init__(self, run_id: str, job: str, pue: float, attribution: str) -> None:
        self.labels = {"run_id": run_id, "job": job}
        self.pue = pue
        self.attribution = attribution
        self._lock = threading.Lock()
        self._energy_kwh = dict.fromkeys(Component, 0.0)
        self._power_w = dict.fromkeys(Component, 0.0)
        self._started = time.monotonic()
        self._duration_s = 0.0
        self._kg: float | None = None
        self._g_per_kwh: float | None = None
        self._zone = ""
        self._file: Path | None = None
        self._last_file_write = 0.0
        self._server: ThreadingHTTPServer | None = None

    # ---- updates --------------------------------------------------------------------------------
    def on_tick(self, log: EnergyLog) -> None:
        """The sampler's hook: add the newest interval (the job's share, PUE included)."""
        dt = log.t1[-1] - log.t0[-1]
        with self._lock:
            for c in Component:
                joules = log.machine_j[c][-1] * self._share(log, c) * self.pue
                self._energy_kwh[c] += joules / 3.6e6
                self._power_w[c] = joules / dt if dt > 0 else 0.0
            self._duration_s = log.t1[-1] - log.t0[0]
        if self._file is not None and time.monotonic() - self._last_file_write >= FILE_EVERY_S:
            self.write_file()

    def _share(self, log: EnergyLog, c: Component) -> float:
        if self.attribution == "machine" or c is Component.GPU:
            return 1.0
        return log.cpu_share[-1] if c is Component.CPU else log.ram_share[-1]

    def finish(self, report: dict[str, Any]) -> None:
        with self._lock:
            for c in Component:
                self._energy_kwh[c] = float(report["energy_by_component_kwh"][c.value])
            self._duration_s = float(report["duration_s"])
            self._kg = report.get("kg_co2e")
            self._g_per_kwh = report.get("mean_g_per_kwh")
            self._zone = report.get("zone") or ""
        if self._file is not None:
            self.write_file()

    # ---- output ---------------------------------------------------------------------------------
    def render(self) -> str:
        with self._lock:
            base = ",".join(f'{k}="{_label_value(v)}"' for k, v in self.labels.items())
            lines = [
                "# HELP carbonshift_job_energy_kwh Energy the job used so far, PUE included, by component.",
                "# TYPE carbonshift_job_energy_kwh counter",
            ]
            lines += [
                f'carbonshift_job_energy_kwh{{{base},component="{c.value}"}} {self._energy_kwh[c]!r}'
                for c in Component
            ]
            lines += [
                "# HELP carbonshift_job_power_watts The job's power over the last interval, PUE included.",
                "# TYPE carbonshift_job_power_watts gauge",
            ]
            lines += [
                f'carbonshift_job_power_watts{{{base},component="{c.value}"}} {self._power_w[c]!r}'
                for c in Component
            ]
            lines += [
                "# HELP carbonshift_job_duration_seconds Time the job has run.",
                "# TYPE carbonshift_job_duration_seconds gauge",
                f"carbonshift_job_duration_seconds{{{base}}} {self._duration_s!r}",
            ]
            if self._kg is not None:
                zone = f',zone="{_label_value(self._zone)}"'
                lines += [
                    "# HELP carbonshift_job_emissions_kg Emissions of the run, kg CO2e (known at the end).",
                    "# TYPE carbonshift_job_emissions_kg gauge",
                    f"carbonshift_job_emissions_kg{{{base}{zone}}} {float(self._kg)!r}",
                ]
            if self._g_per_kwh is not None:
                lines += [
                    "# HELP carbonshift_job_intensity_g_per_kwh Energy-weighted grid intensity over the run.",
                    "# TYPE carbonshift_job_intensity_g_per_kwh gauge",
                    f"carbonshift_job_intensity_g_per_kwh{{{base}}} {float(self._g_per_kwh)!r}",
                ]
        return "\n".join(lines) + "\n"

    def to_file(self, path: Path) -> None:
        self._file = path
        self.write_file()

    def write_file(self) -> None:
        path = self._file
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(self.render())
        os.replace(tmp, path)
        self._last_file_write = time.monotonic()

    def serve(self, port: int) -> int:
        """Serve /metrics on 127.0.0.1:`port` (0: any free port); returns the port."""
        metrics = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404)
                    return
                body = metrics.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="carbonshift-metrics",
            daemon=True,
        ).start()
        return int(server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
