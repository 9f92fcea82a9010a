"""Each cloud's capacity and quota refusals, mapped to one exception type.

The scheduler reacts to a refusal the same way whichever cloud said it: it records the code and tries
the plan's next-best option. So the codes that mean "not here, not now" (no capacity, quota used up,
the type not offered in that zone) become CapacityError with the provider's own code kept; every
other failure is a ProviderError. Both carry scrubbed text only.
"""

from __future__ import annotations

from collections.abc import Iterable

from carbonshift.providers.base import CapacityError, ProviderError
from carbonshift.providers.common import scrub

CAPACITY_CODES: dict[str, frozenset[str]] = {
    "aws": frozenset(
        {
            "InsufficientInstanceCapacity",
            "InsufficientHostCapacity",
            "InsufficientReservedInstanceCapacity",
            "InsufficientCapacity",
            "InstanceLimitExceeded",
            "VcpuLimitExceeded",
            "MaxSpotInstanceCountExceeded",
            "SpotMaxPriceTooLow",
            "Unsupported",  # the type is not offered in that zone/region
        }
    ),
    "gcp": frozenset(
        {
            "ZONE_RESOURCE_POOL_EXHAUSTED",
            "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
            "QUOTA_EXCEEDED",
            "quotaExceeded",
            "RESOURCE_EXHAUSTED",
            "UNSUPPORTED_OPERATION",  # e.g. the accelerator is not offered in the zone
            "resourceNotFound:acceleratorTypes",
        }
    ),
    "azure": frozenset(
        {
            "SkuNotAvailable",
            "AllocationFailed",
            "ZonalAllocationFailed",
            "OverconstrainedAllocationRequest",
            "OverconstrainedZonalAllocationRequest",
            "QuotaExceeded",
            "SpotNotAvailable",
        }
    ),
}

# codes that are capacity refusals only when the message says quota (Azure answers a vCPU quota
# refusal with OperationNotAllowed; the same code also means many unrelated things)
_QUOTA_WORDED = {"azure": frozenset({"OperationNotAllowed"}), "gcp": frozenset({"FORBIDDEN", "forbidden"})}


def is_capacity(provider: str, code: str, message: str = "") -> bool:
    if code in CAPACITY_CODES.get(provider, frozenset()):
        return True
    return code in _QUOTA_WORDED.get(provider, frozenset()) and "quota" in message.lower()


def classify(
    provider: str,
    region: str,
    code: str,
    message: str,
    *,
    action: str = "launch",
    secrets: Iterable[str | None] = (),
) -> ProviderError:
    """The exception for a refusal with the provider's `code` and `message`: CapacityError for the
    capacity/quota family, ProviderError otherwise. The caller raises it."""
    text = scrub(message, secrets)
    if is_capacity(provider, code, message):
        return CapacityError(provider, region, text or "no capacity", code)
    return ProviderError(provider, f"{action} in {region} failed: {code + ': ' if code else ''}{text}")
