"""What the cloud adapters share: tag names, deterministic names and request ids derived from the run
id, the lazy SDK import with its install hint, and scrubbing of secrets from error text.

Everything that must be the same on every retry of a launch (the VM name, the request id, the tags)
is a pure function of the run id, so a retry after a crash finds or re-sends the same thing.
"""

from __future__ import annotations

import hashlib
import importlib
import re
import uuid
from collections.abc import Iterable
from types import ModuleType

from carbonshift.providers.base import ProviderError

TAG_JOB = "carbonshift-job"
TAG_RUN = "carbonshift-run"
# a fixed namespace so that uuid5(run id) is the same on every machine and every release
_RUN_NAMESPACE = uuid.UUID("6f1c3c1e-8a53-5d0a-9f0e-63617262736e")

EXTRA_FOR = {"aws": "aws", "gcp": "gcp", "azure": "azure"}


def request_uuid(run_id: str, salt: str = "") -> str:
    """A UUID derived from the run id (Compute Engine's requestId must be a UUID): a retry re-sends
    the same id, and the API answers with the first request's operation instead of a second VM."""
    return str(uuid.uuid5(_RUN_NAMESPACE, f"{run_id}\x00{salt}"))


def _slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")


def resource_name(run_id: str, max_len: int = 63) -> str:
    """A VM name that is the same for every retry of a run, valid on all three clouds (lower-case
    letters, digits and '-', starts with a letter, at most 63 characters) and unique per run id even
    when two run ids slug to the same text (a hash of the exact id ends it)."""
    digest = hashlib.sha256(run_id.encode("utf-8")).hexdigest()[:10]
    room = max_len - len("cs--") - len(digest)
    slug = _slug(run_id)[:room].strip("-")
    return f"cs-{slug}-{digest}" if slug else f"cs-{digest}"


def label_value(text: str) -> str:
    """A Compute Engine label value: lower-case letters, digits, '_' and '-', at most 63 characters.
    Run ids and job names are usually valid already; anything else is folded the same way every time."""
    folded = re.sub(r"[^a-z0-9_-]", "-", text.lower())
    if len(folded) > 63:
        folded = folded[:52] + "-" + hashlib.sha256(text.encode()).hexdigest()[:10]
    return folded


def import_sdk(provider: str, module: str) -> ModuleType:
    """Import an SDK module only when its adapter is used (google-cloud-compute alone costs over a
    second to import), with the exact install command when the extra is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRA_FOR.get(provider, provider)
        raise ProviderError(
            provider,
            f"the {provider} SDK is not installed ({module}); run: pip install 'carbonshift[{extra}]'",
        ) from None


_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{12,}\b"),
    re.compile(
        r"(?i)((?:sig|signature|x-amz-security-token|x-amz-signature|token|password|secret)[=:]\s*)[^\s&\"']+"
    ),
)


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Error text from an SDK with anything that looks like a credential, and every known secret,
    replaced; cut to a readable length. Errors travel into logs and run records."""
    out = str(text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        out = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", out)
    out = " ".join(out.split())
    return out if len(out) <= 500 else out[:497] + "..."
