"""Settings of the Kubernetes provider: the clusters this daemon runs Jobs on (`kubernetes.clusters.NAME`).

A cluster is a placement target like a cloud region: it joins the catalog as `kubernetes:NAME` with the
grid of the catalog `region` it sits in (`aws:us-east-1` for an EKS cluster there) or of its `zone` (an
on-prem cluster), and the scheduler runs each run there as a `batch/v1` Job (providers/kubernetes.py).
How the daemon reaches the API server: a kubeconfig context (the default: the kubeconfig's current
context), the pod's own service account (`in_cluster`), or a plain URL without credentials (`server`:
`kubectl proxy`, tests). Only plain pydantic here, so the settings module can import it without pulling
in the provider or the SDK.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from carbonshift.config.clusters import ClusterPlacement

# the region part of `kubernetes:NAME` (lower case: spec placements are folded to it)
CLUSTER_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")  # a namespace name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KubernetesCluster(ClusterPlacement):
    """One cluster (one namespace of it): where its power comes from, and how to reach its API."""

    context: str | None = Field(
        default=None, min_length=1, description="kubeconfig context; default: the kubeconfig's current one"
    )
    kubeconfig: Path | None = Field(
        default=None, description="kubeconfig file; default: $KUBECONFIG, ~/.kube/config"
    )
    in_cluster: bool = Field(
        default=False, description="the daemon runs in a pod of this cluster: use its service account"
    )
    server: str | None = Field(
        default=None,
        description="an API server URL used without credentials (kubectl proxy, tests) instead of a kubeconfig",
    )
    namespace: str = Field(default="default", description="where the Jobs are created")
    image: str | None = Field(
        default=None,
        description="container image when the job spec names none; it must have carbonshift on its PATH "
        "unless track is false",
    )
    track: bool = Field(
        default=True, description="run the job under `carbonshift track` (false: the bare command)"
    )
    ttl_seconds_after_finished: int = Field(
        default=86400,
        ge=0,
        le=365 * 86400,
        description="Kubernetes deletes a finished Job this long after it ended, if the scheduler has not",
    )

    @model_validator(mode="after")
    def _one_way_to_the_api(self) -> KubernetesCluster:
        ways = [
            name
            for name, used in (
                ("server", self.server is not None),
                ("in_cluster", self.in_cluster),
                ("context/kubeconfig", self.context is not None or self.kubeconfig is not None),
            )
            if used
        ]
        if len(ways) > 1:
            raise ValueError(f"give only one way to reach the API server, not {' and '.join(ways)}")
        return self

    @field_validator("region")
    @classmethod
    def _region_lower(cls, value: str | None) -> str | None:
        """After the shared check (and strip): catalog keys are lower case."""
        return None if value is None else value.lower()

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not _DNS_LABEL.match(value):
            raise ValueError(f"{value!r} is not a namespace name: 1 to 63 of a-z, 0-9 and '-'")
        return value

    @field_validator("server")
    @classmethod
    def _server(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("must be an http(s) URL, e.g. http://127.0.0.1:8001 (kubectl proxy)")
        return None if value is None else value.rstrip("/")

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c.isspace() for c in value)):
            raise ValueError("must be an image reference without spaces, e.g. ghcr.io/org/trainer:1.2")
        return value

    @field_validator("kubeconfig")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()


class KubernetesSettings(_Strict):
    clusters: dict[str, KubernetesCluster] = Field(
        default_factory=dict, description="cluster name -> cluster; each is placement target kubernetes:NAME"
    )

    @field_validator("clusters")
    @classmethod
    def _names(cls, value: dict[str, KubernetesCluster]) -> dict[str, KubernetesCluster]:
        for name in value:
            if not CLUSTER_NAME.match(name):
                raise ValueError(
                    f"cluster name {name!r}: 1 to 63 of a-z, 0-9, '.', '_' or '-', starting and ending with "
                    "a letter or digit (it is the region in kubernetes:NAME)"
                )
        return value
