"""Which VM image a launch boots: the config's `images` (by 'provider:region', then 'provider'), else a
documented default that needs no per-region table.

Defaults are x86-64 images whose names do not change with each release: on AWS an SSM public parameter
that EC2 resolves at launch (`resolve:ssm:...`, so no AMI id per region is hard-coded here), on Google
Cloud an image family, on Azure a marketplace URN with version `latest`. GPU instances get an image
with NVIDIA drivers installed, since the bootstrap does not install drivers.
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_IMAGES: dict[tuple[str, bool], str] = {
    # (provider, gpu) -> image
    (
        "aws",
        False,
    ): "resolve:ssm:/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
    (
        "aws",
        True,
    ): "resolve:ssm:/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id",
    ("gcp", False): "projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64",
    (
        "gcp",
        True,
    ): "projects/ubuntu-os-accelerator-images/global/images/family/ubuntu-accelerator-2204-amd64-with-nvidia-550",
    ("azure", False): "Canonical:ubuntu-24_04-lts:server:latest",
    ("azure", True): "microsoft-dsvm:ubuntu-hpc:2204:latest",
}


def image_for(images: Mapping[str, str], provider: str, region: str, gpu: bool) -> str:
    """The configured image for provider:region, else for the provider, else the default."""
    return images.get(f"{provider}:{region}") or images.get(provider) or DEFAULT_IMAGES[(provider, gpu)]
