"""What every cluster entry (Slurm, Kubernetes) says about where its power comes from: the catalog
region it sits in, or its grid zone, with an optional country and PUE. One model, so both kinds of
cluster join the catalog, and are validated, the same way."""

from __future__ import annotations

import re
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_REGION_REF = re.compile(r"^[A-Za-z0-9-]+:[A-Za-z0-9._-]+$")


class ClusterPlacement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    region: str | None = Field(
        default=None,
        description="the catalog region whose grid the cluster draws from, as provider:region "
        "(e.g. aws:us-east-1 for a cluster in that region); or give zone",
    )
    zone: str | None = Field(
        default=None, min_length=1, description="or the grid zone (DE, US-CAL-CISO, ...)"
    )
    country: str | None = Field(default=None, min_length=2, max_length=2, description="ISO country code")
    pue: float | None = Field(
        default=None, ge=1.0, le=3.0, description="the site's PUE; default: the region's, else 1.0"
    )

    @model_validator(mode="after")
    def _region_or_zone(self) -> Self:
        if (self.region is None) == (self.zone is None):
            raise ValueError(
                "give exactly one of region (a catalog region, provider:region) or zone (a grid zone)"
            )
        return self

    @field_validator("region")
    @classmethod
    def _region_ref(cls, value: str | None) -> str | None:
        if value is not None and not _REGION_REF.match(value.strip()):
            raise ValueError("must be a catalog region as provider:region, e.g. aws:us-east-1")
        return None if value is None else value.strip()
