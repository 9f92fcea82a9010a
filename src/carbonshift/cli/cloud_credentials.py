"""Which clouds have credentials configured, judged from environment variables and files alone.

Why not ask each SDK: their default chains end in a probe of the cloud's metadata address
(google-auth's `default()`, boto3's instance role, azure-identity's managed identity), which on a
laptop or a CI runner waits for timeouts and talks to whatever answers at that address. A command
that visits every cloud (`providers orphans` without `--provider`) must not do that for a cloud the
user never set up. So a cloud counts as configured when one of its documented sources is present;
on a cloud VM whose only credential is its attached identity, the user names the cloud
(`--provider gcp`) and the SDK's own chain is used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from carbonshift.config import Settings

_AWS_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL_EC2",
    "AWS_ENDPOINT_URL",
)
_AZURE_ENV = ("AZURE_CLIENT_ID", "AZURE_USERNAME", "AZURE_FEDERATED_TOKEN_FILE")

HINTS = {
    "aws": "AWS_PROFILE, AWS_ACCESS_KEY_ID or ~/.aws/credentials",
    "gcp": "GOOGLE_APPLICATION_CREDENTIALS or `gcloud auth application-default login`",
    "azure": "AZURE_CLIENT_ID/AZURE_TENANT_ID or `az login`, and CARBONSHIFT_AZURE_SUBSCRIPTION_ID",
}


def _any_file(*paths: Path) -> bool:
    return any(p.is_file() for p in paths)


def cloud_configured(
    cloud: str, settings: Settings, environ: Mapping[str, str] | None = None, home: Path | None = None
) -> bool:
    """Whether `cloud` (aws, gcp, azure) has a credential source configured; reads no network."""
    env = os.environ if environ is None else environ
    root = Path.home() if home is None else home
    if cloud == "aws":
        if any(env.get(name) for name in _AWS_ENV):
            return True
        credentials = Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or root / ".aws" / "credentials")
        config = Path(env.get("AWS_CONFIG_FILE") or root / ".aws" / "config")
        return _any_file(credentials, config)
    if cloud == "gcp":
        if settings.gcp_endpoint or env.get("GOOGLE_APPLICATION_CREDENTIALS"):
            return True
        gcloud = Path(env.get("CLOUDSDK_CONFIG") or root / ".config" / "gcloud")
        appdata = Path(env["APPDATA"]) / "gcloud" if env.get("APPDATA") else gcloud
        name = "application_default_credentials.json"
        return _any_file(gcloud / name, appdata / name)
    if cloud == "azure":
        if settings.azure_endpoint:
            return True
        if not (settings.azure_subscription_id or env.get("AZURE_SUBSCRIPTION_ID")):
            return False
        azure_dir = Path(env.get("AZURE_CONFIG_DIR") or root / ".azure")
        signed_in = _any_file(
            *(azure_dir / n for n in ("msal_token_cache.json", "msal_token_cache.bin", "azureProfile.json"))
        )
        return signed_in or any(env.get(name) for name in _AZURE_ENV)
    raise ValueError(f"unknown cloud {cloud!r}")
