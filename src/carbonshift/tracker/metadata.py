"""Where is this machine? Ask the cloud's instance metadata service (AWS IMDSv2, GCP, Azure IMDS).

Each probe has a short timeout and runs in parallel with the others (and with the job): off the cloud
the link-local address does not answer and the answer is simply "not on a cloud". Proxies are ignored
(metadata must never be sent through one). The AWS session token is a credential: it is used for one
request and never logged or reported. Endpoints are settings so tests can point them at a local fake.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CloudPlace:
    provider: str  # aws, gcp, azure
    region: str
    detail: str  # e.g. the GCP zone or the Azure location as reported
    instance_type: str | None = None  # p4d.24xlarge, a2-highgpu-1g, Standard_NC4as_T4_v3: for embodied carbon


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies, no netrc: metadata is local to the machine
    return session


def probe_aws(base_url: str, timeout_s: float) -> CloudPlace | None:
    with _session() as s:
        token = s.put(
            f"{base_url.rstrip('/')}/latest/api/token",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
            timeout=timeout_s,
        )
        if token.status_code != 200 or not token.text.strip():
            return None
        headers = {"X-aws-ec2-metadata-token": token.text.strip()}
        r = s.get(
            f"{base_url.rstrip('/')}/latest/meta-data/placement/region", headers=headers, timeout=timeout_s
        )
        region = r.text.strip() if r.status_code == 200 else ""
        if not _plausible(region):
            return None
        kind = _optional(s, f"{base_url.rstrip('/')}/latest/meta-data/instance-type", headers, timeout_s)
        return CloudPlace("aws", region, region, kind)


def probe_gcp(base_url: str, timeout_s: float) -> CloudPlace | None:
    with _session() as s:
        r = s.get(
            f"{base_url.rstrip('/')}/computeMetadata/v1/instance/zone",
            headers={"Metadata-Flavor": "Google"},
            timeout=timeout_s,
        )
        if r.status_code != 200 or r.headers.get("Metadata-Flavor") != "Google":
            return None
        zone = r.text.strip().rsplit("/", 1)[-1]  # projects/123/zones/europe-west1-b
        region = zone.rsplit("-", 1)[0] if zone.count("-") >= 2 else ""
        if not _plausible(region):
            return None
        url = f"{base_url.rstrip('/')}/computeMetadata/v1/instance/machine-type"
        machine = _optional(s, url, {"Metadata-Flavor": "Google"}, timeout_s)  # projects/1/machineTypes/x
        return CloudPlace("gcp", region, zone, machine.rsplit("/", 1)[-1] if machine else None)


def probe_azure(base_url: str, timeout_s: float) -> CloudPlace | None:
    with _session() as s:
        r = s.get(
            f"{base_url.rstrip('/')}/metadata/instance/compute/location",
            params={"api-version": "2021-02-01", "format": "text"},
            headers={"Metadata": "true"},
            timeout=timeout_s,
        )
        location = r.text.strip().lower() if r.status_code == 200 else ""
        if not _plausible(location):
            return None
        size = _optional(
            s,
            f"{base_url.rstrip('/')}/metadata/instance/compute/vmSize",
            {"Metadata": "true"},
            timeout_s,
            {"api-version": "2021-02-01", "format": "text"},
        )
        return CloudPlace("azure", location, location, size)


def _plausible(region: str) -> bool:
    return 0 < len(region) <= 63 and all(ch.isalnum() or ch == "-" for ch in region)


def _optional(
    s: requests.Session,
    url: str,
    headers: dict[str, str],
    timeout_s: float,
    params: dict[str, str] | None = None,
) -> str | None:
    """A value worth having but not needed (the instance type): None when it does not come back."""
    try:
        r = s.get(url, headers=headers, params=params, timeout=timeout_s)
    except requests.RequestException:
        return None
    text = r.text.strip() if r.status_code == 200 else ""
    ok = 0 < len(text) <= 200 and all(ch.isalnum() or ch in "-._/+" for ch in text)
    return text if ok else None


def detect(*, aws_url: str, gcp_url: str, azure_url: str, timeout_s: float = 0.5) -> CloudPlace | None:
    """The first provider whose metadata service answers, or None (not on a cloud, or blocked).

    Probes run on daemon threads and the answer is due after at most three timeouts (AWS needs two
    requests): a probe that hangs anyway is abandoned, it can delay neither the result nor exit."""
    probes: list[tuple[str, Callable[[str, float], CloudPlace | None], str]] = [
        ("aws", probe_aws, aws_url),
        ("gcp", probe_gcp, gcp_url),
        ("azure", probe_azure, azure_url),
    ]
    answers: queue.Queue[CloudPlace | None] = queue.Queue()

    def run(name: str, fn: Callable[[str, float], CloudPlace | None], url: str) -> None:
        try:
            answers.put(fn(url, timeout_s))
        except requests.RequestException as exc:
            log.debug("%s metadata: %s", name, type(exc).__name__)
            answers.put(None)

    for name, fn, url in probes:
        threading.Thread(
            target=run, args=(name, fn, url), name=f"carbonshift-{name}-metadata", daemon=True
        ).start()
    deadline = time.monotonic() + 3 * timeout_s + 0.5
    for _ in probes:
        try:
            found = answers.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            return None
        if found is not None:
            return found
    return None
