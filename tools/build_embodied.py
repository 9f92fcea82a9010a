"""Build src/carbonshift/catalog/data/embodied.csv: each catalog instance type's host embodied emissions.

    .venv/bin/python tools/build_embodied.py --shared ../shared/data          # write
    .venv/bin/python tools/build_embodied.py --shared ../shared/data --check  # fail if it differs

For every row of catalog/data/instance_types.csv:
- a type Cloud Carbon Footprint lists (cloud-carbon-coefficients, output/coefficients-*-embodied.csv,
  Apache-2.0): CCF's total (TE) and GPU part, with the host's vCPUs and GPUs from CCF's data/*-instances.csv;
- a type CCF lacks (p5, H100/H200 families, newer sizes): TE by CCF's own method from the host's
  hardware listed in DERIVED below, each with the facts and assumptions written into the row.
The output is deterministic, so `--check` proves the bundled file is what the sources say.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from carbonshift.catalog.embodied import ccf_server_kg  # noqa: E402
from carbonshift.catalog.instances import InstanceType, instance_types  # noqa: E402

OUT = REPO / "src" / "carbonshift" / "catalog" / "data" / "embodied.csv"
COLUMNS = (
    "provider", "key", "vcpus", "gpus", "te_kg_co2e", "gpu_kg_co2e", "host_vcpus", "host_gpus", "source",
    "derivation",
)  # fmt: skip


@dataclass(frozen=True)
class Host:
    """A host the CCF tables lack, for CCF's method: its hardware and where the facts come from."""

    vcpus: int
    memory_gb: float
    cpus: int
    ssds: int
    gpus: int
    facts: str


# Hosts of the types CCF does not list: the largest size of each family is the whole server. Memory,
# vCPUs and GPU counts are the providers' published sizes; CPU sockets and local drives as stated.
_TWO_SSD = "local NVMe counted as 2 SSDs, the count CCF uses for its g4dn and p3 GPU hosts"
_ONE_SSD = "local NVMe counted as 1 SSD, as CCF does for Compute Engine and Azure hosts"
DERIVED: tuple[tuple[str, str, Host], ...] = (
    ("aws", r"p4de\.", Host(96, 1152, 2, 8, 8, "p4de.24xlarge: 8x A100 80GB, 1152 GB, 2 CPUs, 8x 1 TB NVMe SSD (AWS)")),
    ("aws", r"p5\.", Host(192, 2048, 2, 8, 8, "p5.48xlarge: 8x H100, 2048 GB, 2 CPUs, 8x 3.84 TB NVMe SSD (AWS)")),
    ("aws", r"p5en\.", Host(192, 2048, 2, 8, 8, "p5en.48xlarge: 8x H200, 2048 GB, 2 CPUs, 8x 3.84 TB NVMe SSD (AWS)")),
    ("aws", r"g5\.", Host(192, 768, 2, 2, 8, "g5.48xlarge: 8x A10G, 768 GB, 2 CPUs, 2x 3.8 TB NVMe SSD (AWS)")),
    ("aws", r"g6\.", Host(192, 768, 2, 2, 8, f"g6.48xlarge: 8x L4, 768 GB, 2 CPUs (AWS); {_TWO_SSD}")),
    ("aws", r"g6e\.", Host(192, 1536, 2, 2, 8, f"g6e.48xlarge: 8x L40S, 1536 GB, 2 CPUs (AWS); {_TWO_SSD}")),
    ("gcp", r"a2-ultragpu-", Host(96, 1360, 2, 1, 8, f"a2-ultragpu-8g: 8x A100 80GB, 1360 GB, 2 CPUs as CCF's a2 hosts; {_ONE_SSD}")),
    ("gcp", r"a3-highgpu-", Host(208, 1872, 2, 1, 8, f"a3-highgpu-8g: 8x H100, 1872 GB, 2 CPUs (Google); {_ONE_SSD}")),
    ("gcp", r"a3-ultragpu-", Host(224, 2952, 2, 1, 8, f"a3-ultragpu-8g: 8x H200, 2952 GB, 2 CPUs (Google); {_ONE_SSD}")),
    ("gcp", r"g2-", Host(96, 384, 2, 1, 8, f"g2-standard-96: 8x L4, 384 GB, 2 CPUs (Google); {_ONE_SSD}")),
    ("azure", r"Standard_ND96asr_v4$", Host(96, 900, 2, 1, 8, f"ND96asr_v4: 8x A100 40GB, 900 GB, 2 CPUs (Microsoft); {_ONE_SSD}")),
    ("azure", r"Standard_ND96amsr_A100_v4$", Host(96, 1900, 2, 1, 8, f"ND96amsr_A100_v4: 8x A100 80GB, 1900 GB, 2 CPUs (Microsoft); {_ONE_SSD}")),
    ("azure", r"Standard_NC\d+ads_A100_v4$", Host(96, 880, 2, 1, 4, f"NC96ads_A100_v4: 4x A100 PCIe 80GB, 880 GB, 2 CPUs assumed (Microsoft); {_ONE_SSD}")),
    ("azure", r"Standard_ND96isr_H100_v5$", Host(96, 1900, 2, 1, 8, f"ND96isr_H100_v5: 8x H100, 1900 GB, 2 CPUs (Microsoft); {_ONE_SSD}")),
    ("azure", r"Standard_D\d+s_v5$", Host(96, 384, 2, 0, 0, "D96s_v5: 384 GB, 2 CPUs, no local disk (Microsoft)")),
)  # fmt: skip

# GPUs attached to Compute Engine N1 machines: the host's GPU count (the most one N1 VM can take)
N1_HOST_GPUS = {"nvidia-tesla-t4": 4, "nvidia-tesla-v100": 8}


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


class Ccf:
    def __init__(self, shared: Path) -> None:
        base = shared / "cloud-carbon-coefficients"
        self.aws = {r["type"]: r for r in _read(base / "output" / "coefficients-aws-embodied.csv")}
        self.aws_instances = {r["Instance type"]: r for r in _read(base / "data" / "aws-instances.csv")}
        self.gcp_mean = {r["type"]: float(r["total_mean"]) for r in _read(base / "output" / "coefficients-gcp-embodied-mean.csv")}  # fmt: skip
        self.gcp: dict[str, dict[str, str]] = {}
        for r in _read(base / "output" / "coefficients-gcp-embodied.csv"):
            self.gcp.setdefault(r["type"], r)
        self.gcp_instances: dict[str, dict[str, str]] = {}
        for r in _read(base / "data" / "gcp-instances.csv"):
            self.gcp_instances.setdefault(r["Machine type"], r)
        self.azure = {r["type"]: r for r in _read(base / "output" / "coefficients-azure-embodied.csv")}
        self.azure_instances = {r["Virtual Machine"]: r for r in _read(base / "data" / "azure-instances.csv")}

    def aws_family_vcpus(self, name: str) -> int:
        """CCF's ToR: the largest instance of the family (not a service variant like .elasticsearch)."""
        family = name.split(".", maxsplit=1)[0]
        sizes = [
            int(r["Instance vCPU"])
            for t, r in self.aws_instances.items()
            if t.count(".") == 1 and t.split(".")[0] == family
        ]
        return max(sizes)


def _number(text: str) -> int:
    return int(text) if text.strip().isdigit() else 0


def _row(t: InstanceType, te: float, gpu: float, host_vcpus: int, host_gpus: int, source: str, how: str) -> dict[str, str]:  # fmt: skip
    return {
        "provider": t.provider,
        "key": t.key,
        "vcpus": str(t.vcpus),
        "gpus": str(t.gpus),
        "te_kg_co2e": f"{te:.2f}",
        "gpu_kg_co2e": f"{gpu:.2f}",
        "host_vcpus": str(max(host_vcpus, t.vcpus)),
        "host_gpus": str(max(host_gpus, t.gpus)),
        "source": source,
        "derivation": how,
    }


def _derived(t: InstanceType) -> dict[str, str] | None:
    for provider, pattern, host in DERIVED:
        if provider == t.provider and re.match(pattern, t.name):
            te, gpu = ccf_server_kg(memory_gb=host.memory_gb, cpus=host.cpus, ssds=host.ssds, gpus=host.gpus)
            how = (
                f"not in CCF; CCF's method on the host {host.facts}: 1000 + ({host.memory_gb:g} - 16) GB x 533/384 "
                f"+ {host.cpus - 1} x 100 (CPUs) + {host.ssds} x 100 (SSDs) + {host.gpus} x 150 (GPUs)"
            )
            return _row(t, te, gpu, host.vcpus, host.gpus, "ccf-method", how)
    return None


def _ccf(t: InstanceType, ccf: Ccf) -> dict[str, str] | None:
    if t.provider == "aws" and t.name in ccf.aws:
        r = ccf.aws[t.name]
        host_gpus = _number(ccf.aws_instances[t.name]["Platform GPU Quantity"])
        how = f"CCF coefficients-aws-embodied.csv row {t.name}; host vCPUs: the family's largest size"
        return _row(t, float(r["total"]), float(r["additional_gpus"]), ccf.aws_family_vcpus(t.name), host_gpus, "ccf:aws", how)  # fmt: skip
    if t.provider == "gcp" and t.name in ccf.gcp_mean:
        inst = ccf.gcp_instances[t.name]
        te, gpu = ccf.gcp_mean[t.name], float(ccf.gcp[t.name]["additional_gpus"])
        host_vcpus, host_gpus = (
            int(inst["Platform vCPUs (highest vCPU possible)"]),
            _number(inst["Platform GPU"]),
        )
        how = f"CCF coefficients-gcp-embodied-mean.csv row {t.name} (mean over its microarchitectures)"
        if t.accelerator:
            host_gpus = N1_HOST_GPUS[t.accelerator]
            gpu = host_gpus * 150.0
            te += gpu
            how += (
                f" + {host_gpus} attached {t.accelerator} GPUs x 150 kg by CCF's method (CCF counts no GPU "
                f"for N1; {host_gpus} is the most one N1 VM takes)"
            )
        return _row(t, te, gpu, host_vcpus, host_gpus, "ccf:gcp", how)
    if t.provider == "azure":
        name = t.name.removeprefix("Standard_").replace("_", " ")
        alias = re.sub(r"^(E\d+)s( v5)$", r"\1\2", name)  # Esv5 is Ev5's host with premium storage
        if alias in ccf.azure:
            r, inst = ccf.azure[alias], ccf.azure_instances[alias]
            how = f"CCF coefficients-azure-embodied.csv row {alias}"
            if alias != name:
                how += f" (the same host as {name}, which adds premium storage support only)"
            platform = int(inst["Platform vCPUs (highest vCPU possible)"])
            largest = max(
                int(i["Instance vCPUs"])
                for i in ccf.azure_instances.values()
                if i["Series"] == inst["Series"]
            )
            if largest > platform:
                how += f"; host vCPUs: the series' largest size ({largest}), as CCF lists fewer ({platform})"
            return _row(
                t, float(r["total"]), float(r["additional_gpus"]), max(platform, largest),
                _number(inst["Platform GPU"]), "ccf:azure", how,
            )  # fmt: skip
    return None


def build(shared: Path) -> str:
    ccf = Ccf(shared)
    rows = []
    for t in instance_types():
        row = _ccf(t, ccf) or _derived(t)
        if row is None:
            raise SystemExit(f"no embodied figure for {t.provider}:{t.key}: add its host to DERIVED")
        if t.gpus > int(row["host_gpus"]) or (t.gpus == 0) != (float(row["gpu_kg_co2e"]) == 0):
            raise SystemExit(f"{t.provider}:{t.key}: GPU count disagrees with its host row {row}")
        rows.append(row)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--check", action="store_true", help="fail when the bundled file differs")
    args = parser.parse_args()
    text = build(args.shared)
    if args.check:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} differs from a fresh build; rerun without --check", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({text.count(chr(10)) - 1} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
