"""The tracker's settings (`tracker.*` in the config file, CARBONSHIFT_TRACKER__* in the environment).

Kept here rather than in config/settings.py so the tracker owns its knobs; this module imports
nothing but pydantic, so config can include it without pulling the tracker in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TrackerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interval_s: float = Field(
        default=1.0,
        ge=0.01,
        le=3600,
        description="seconds between samples; counters need no finer, a coarser one costs nothing in accuracy",
    )
    attribution: Literal["process", "machine"] = Field(
        default="process",
        description="process: the job is charged its process tree's share; machine: the whole machine",
    )
    pue: float | None = Field(
        default=None, ge=1.0, le=3.0, description="overrides the PUE of the region or location"
    )
    vcpus: int | None = Field(default=None, ge=1, description="CPU model: vCPUs (default: logical CPUs)")
    memory_gb: float | None = Field(default=None, gt=0, description="memory model: GB (default: total RAM)")
    rapl: bool = Field(default=True, description="read RAPL energy counters where readable")
    powercap_path: Path = Field(default=Path("/sys/class/powercap"), description="where RAPL zones live")
    gpu: bool = Field(default=True, description="read NVIDIA GPUs through NVML (the `gpu` extra)")
    detect_cloud: bool = Field(
        default=True, description="ask the cloud instance metadata service where this machine runs"
    )
    metadata_timeout_s: float = Field(default=0.5, gt=0, le=10)
    aws_metadata_url: str = "http://169.254.169.254"
    gcp_metadata_url: str = "http://169.254.169.254"  # metadata.google.internal, without a DNS lookup
    azure_metadata_url: str = "http://169.254.169.254"
    output_dir: Path | None = Field(
        default=None, description="where reports and emissions.csv go; default: <data_dir>/runs"
    )
    codecarbon_csv: bool = Field(default=True, description="append a CodeCarbon-compatible emissions.csv row")
    project_name: str = Field(default="carbonshift", description="project_name in emissions.csv")
    prometheus_file: Path | None = Field(
        default=None, description="write Prometheus text-format metrics here (node_exporter textfile)"
    )
    prometheus_port: int | None = Field(
        default=None, ge=0, le=65535, description="serve /metrics on 127.0.0.1:PORT while a job runs"
    )
    report_attempts: int = Field(
        default=5, ge=1, le=20, description="`track --report-url`: tries to send the report before giving up"
    )
    report_retry_s: float = Field(
        default=2.0, gt=0, le=60, description="`track --report-url`: first wait between tries (then doubled)"
    )
