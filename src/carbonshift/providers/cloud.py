"""What the three cloud adapters have in common: the launch plan and the launch sequence.

A launch is split in two so that `carbonshift launch --dry-run` shows exactly what a real launch would
send, and needs no SDK and no credentials to do it:
  1. `plan(request)`: pure. Picks the instance type from the bundled catalog, the image from config,
     renders the bootstrap and builds the provider's request body (boto3 keyword arguments, the
     Compute Engine Instance JSON, the ARM JSON bodies).
  2. `launch(request)`: looks the run up first (tag / label / deterministic name), and only when no
     instance exists sends the plan, with the run id as the provider's idempotency key as well. The
     SDK token alone is not enough: moto ignores it, and a real retry can come after its window.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from carbonshift.catalog import load_catalog
from carbonshift.catalog.instances import (
    InstanceType,
    describe_hardware,
    find_instance_type,
    pick_instance,
)
from carbonshift.config import Settings
from carbonshift.errors import UserInputError
from carbonshift.providers.base import Handle, InstanceState, InstanceStatus, LaunchRequest
from carbonshift.providers.bootstrap import (
    EXIT_MARKER,
    package_source,
    redact,
    render_bootstrap,
)
from carbonshift.providers.images import image_for

log = logging.getLogger("carbonshift.providers")


@dataclass(frozen=True)
class LaunchPlan:
    """Everything one launch will send. `body` holds the real bootstrap (with the run's token);
    `public()` is what may be shown."""

    provider: str
    region: str
    run_id: str
    instance_type: InstanceType
    image: str
    interruptible: bool
    script: str
    body: dict[str, Any]
    token: str | None = field(default=None, repr=False)
    notes: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()  # other values to hide when shown (a generated password)

    def public(self) -> dict[str, Any]:
        """The plan as JSON for people: the request as it would be sent, with the per-run token and
        any generated secret replaced, in plain text and inside base64 values (which are shown as the
        base64 of the redacted text). No cloud credential is ever part of a plan."""
        body = _replace_strings(copy.deepcopy(self.body), self.token, self.hidden)
        return {
            "provider": self.provider,
            "region": self.region,
            "run_id": self.run_id,
            "instance_type": self.instance_type.to_dict(),
            "image": self.image,
            "interruptible": self.interruptible,
            "request": body,
            "bootstrap": redact(self.script, self.token),
            "notes": list(self.notes),
        }


def _redact_text(text: str, token: str | None, hidden: Sequence[str]) -> str:
    out = redact(text, token) if token else text
    for secret in hidden:
        out = out.replace(secret, "<generated, never stored>")
    return out


_BASE64 = re.compile(r"^(?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")


def _base64_text(value: str) -> str | None:
    """The text a base64 string encodes (Azure customData is the bootstrap in base64), else None."""
    if len(value) < 8 or not _BASE64.match(value):
        return None
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def _replace_strings(value: Any, token: str | None, hidden: Sequence[str]) -> Any:
    if isinstance(value, str):
        # a secret inside base64 survives a text replacement: redact the decoded text, encode it again
        decoded = _base64_text(value)
        if decoded is not None:
            shown = _redact_text(decoded, token, hidden)
            if shown != decoded:
                return base64.b64encode(shown.encode("utf-8")).decode("ascii")
        return _redact_text(value, token, hidden)
    if isinstance(value, dict):
        return {k: _replace_strings(v, token, hidden) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_strings(v, token, hidden) for v in value]
    return value


def exit_code_from_console(text: str) -> int | None:
    """The job's exit code from the bootstrap's `carbonshift-exit-code: N` console line (the last one)."""
    code: int | None = None
    for line in text.splitlines():
        _, found, rest = line.partition(EXIT_MARKER)
        if found:
            word = rest.strip().split(" ")[0] if rest.strip() else ""
            if word.lstrip("-").isdigit():
                code = int(word)
    return code


def ended_status(console: str | None, detail: str) -> InstanceStatus:
    """The status of an instance that powered itself off: SUCCEEDED / FAILED by the exit code the
    bootstrap printed, FAILED with exit_code None when the console could not be read (the run's report,
    sent before the power-off, still carries the code)."""
    code = exit_code_from_console(console) if console else None
    if code is None:
        return InstanceStatus(
            InstanceState.FAILED, None, f"{detail}; no exit code on the console (see the run's report)"
        )
    state = InstanceState.SUCCEEDED if code == 0 else InstanceState.FAILED
    return InstanceStatus(state, code, f"{detail}; the job exited with {code}")


class CloudProvider(ABC):
    """Base of the AWS, Compute Engine and Azure adapters (see the module docstring)."""

    name: str  # set by each adapter class

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        regions: Sequence[str] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        self._regions = list(regions) if regions is not None else None
        self._clock = clock or (lambda: datetime.now(UTC))

    # ---- the Provider protocol ---------------------------------------------------------------------
    def regions(self) -> list[str]:
        """The catalog's regions of this provider (or those given at construction, e.g. to limit
        `managed()` scans)."""
        if self._regions is not None:
            return list(self._regions)
        return [r.region for r in load_catalog().regions(provider=self.name)]

    def launch(self, request: LaunchRequest) -> Handle:
        existing = self.find(request.run_id, request.region)
        if existing is not None:
            log.info("%s: run %s already has instance %s", self.name, request.run_id, existing.instance_id)
            return existing
        plan = self.plan(request)
        return self._create(plan, request)

    @abstractmethod
    def find(self, run_id: str, region: str) -> Handle | None: ...

    @abstractmethod
    def status(self, handle: Handle) -> InstanceStatus: ...

    @abstractmethod
    def terminate(self, handle: Handle) -> None: ...

    @abstractmethod
    def gone(self, handle: Handle) -> bool: ...

    @abstractmethod
    def managed(self) -> list[Handle]: ...

    # ---- planning (pure) ------------------------------------------------------------------------------
    def plan(self, request: LaunchRequest) -> LaunchPlan:
        itype = self.instance_type_for(request)
        image = image_for(self.settings.images, self.name, request.region, itype.gpus > 0)
        script = render_bootstrap(
            request,
            self.name,
            package=request.package or package_source(self.settings, request.run_id),
            instance_type=itype.name,
        )
        return self._plan(request, itype, image, script)

    def instance_type_for(self, request: LaunchRequest) -> InstanceType:
        hardware = request.spec.hardware
        if request.instance_type is None:
            return pick_instance(self.name, request.region, hardware)
        known = find_instance_type(self.name, request.instance_type)
        if known is not None:
            if not known.satisfies(hardware):
                raise UserInputError(
                    "instance_type",
                    f"{known.describe()} does not have what the spec asks for ({describe_hardware(hardware)})",
                )
            return known
        # a type the catalog does not list (a newer family): taken as given, sized as the spec says
        log.warning(
            "%s: instance type %r is not in the bundled catalog; using it as given",
            self.name,
            request.instance_type,
        )
        return InstanceType(
            provider=self.name,
            name=request.instance_type,
            gpu=hardware.gpu,
            gpus=hardware.gpus,
            vcpus=hardware.vcpus,
            memory_gb=hardware.memory_gb,
            accelerator=None,
            regions=None,
            source="given on the command line / request",
        )

    @abstractmethod
    def _plan(self, request: LaunchRequest, itype: InstanceType, image: str, script: str) -> LaunchPlan: ...

    @abstractmethod
    def _create(self, plan: LaunchPlan, request: LaunchRequest) -> Handle: ...

    def describe(self, request: LaunchRequest) -> str:
        """The dry-run: the plan as indented JSON."""
        return json.dumps(self.plan(request).public(), indent=2)
