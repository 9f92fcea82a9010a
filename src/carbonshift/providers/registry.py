"""Provider adapters by name, built from settings. SDKs load only when an adapter makes its first call,
so building one (or listing them) costs nothing.

The scheduler gets an adapter with `get_provider(name, settings)`. `local` is the scheduler's own
adapter (providers/local.py): it registers itself here with `register_provider`, so this module does not
need to know its constructor.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from carbonshift.config import Settings
from carbonshift.errors import UserInputError
from carbonshift.providers.base import Provider
from carbonshift.providers.cloud import CloudProvider

CLOUD_PROVIDERS: tuple[str, ...] = ("aws", "gcp", "azure")

Factory = Callable[..., Provider]
_EXTRA: dict[str, Factory] = {}
# adapters of this package that register themselves when their module is imported (on first use)
_SELF_REGISTERING: dict[str, str] = {
    "slurm": "carbonshift.providers.slurm",
    "kubernetes": "carbonshift.providers.kubernetes",
}


def register_provider(name: str, factory: Factory) -> None:
    """Add (or replace) an adapter: `factory(settings, **kwargs)` returns a Provider."""
    _EXTRA[name] = factory


def cloud_provider_class(name: str) -> type[CloudProvider]:
    if name == "aws":
        from carbonshift.providers.aws import AwsProvider

        return AwsProvider
    if name == "gcp":
        from carbonshift.providers.gcp import GcpProvider

        return GcpProvider
    if name == "azure":
        from carbonshift.providers.azure import AzureProvider

        return AzureProvider
    raise UserInputError("provider", f"unknown provider {name!r}; known: {', '.join(provider_names())}")


def provider_names() -> list[str]:
    return [*CLOUD_PROVIDERS, *sorted(n for n in {*_EXTRA, *_SELF_REGISTERING} if n not in CLOUD_PROVIDERS)]


def get_provider(
    name: str, settings: Settings, *, regions: Sequence[str] | None = None, **kwargs: Any
) -> Provider:
    """The adapter for `name` ('aws', 'gcp', 'azure', or one registered), built from settings."""
    key = name.strip().lower()
    if key not in _EXTRA and key in _SELF_REGISTERING:
        importlib.import_module(_SELF_REGISTERING[key])
    if key in _EXTRA:
        return _EXTRA[key](settings, **kwargs)
    cls = cloud_provider_class(key)
    return cls(settings, regions=regions, **kwargs)


def get_cloud_provider(
    name: str,
    settings: Settings,
    *,
    regions: Sequence[str] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> CloudProvider:
    """A cloud adapter with its planning methods (`plan`, `describe`) for dry-runs."""
    return cloud_provider_class(name.strip().lower())(settings, regions=regions, clock=clock)
