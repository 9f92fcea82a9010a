"""Where jobs run: one interface, adapters for this machine and the three clouds. Providers never plan."""

from carbonshift.providers.base import (
    CapacityError,
    Handle,
    InstanceState,
    InstanceStatus,
    LaunchRequest,
    Provider,
    ProviderError,
)

__all__ = [
    "CapacityError",
    "Handle",
    "InstanceState",
    "InstanceStatus",
    "LaunchRequest",
    "Provider",
    "ProviderError",
]
