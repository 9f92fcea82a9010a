"""A loopback stand-in for the cloud instance metadata services (AWS IMDSv2, GCP, Azure IMDS), with
each one's required headers checked as the real ones do. Loopback only."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

TOKEN = "AQAEAFAKE-imds-token-do-not-leak"


class FakeMetadata:
    def __init__(self, cloud: str, region: str, instance_type: str | None = None) -> None:
        self.cloud = cloud
        self.region = region
        self.instance_type = instance_type  # None: the type's path answers 404
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                fake.requests.append(("PUT", self.path, dict(self.headers)))
                if fake.cloud == "aws" and self.path == "/latest/api/token":
                    if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                        return self._send(400, "")
                    return self._send(200, TOKEN)
                self._send(404, "")

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path, dict(self.headers)))
                path = urlsplit(self.path).path
                kind = fake.instance_type
                if fake.cloud == "aws" and path == "/latest/meta-data/placement/region":
                    if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
                        return self._send(401, "")
                    return self._send(200, fake.region)
                if fake.cloud == "aws" and path == "/latest/meta-data/instance-type" and kind:
                    if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
                        return self._send(401, "")
                    return self._send(200, kind)
                if fake.cloud == "gcp" and path == "/computeMetadata/v1/instance/machine-type" and kind:
                    if self.headers.get("Metadata-Flavor") != "Google":
                        return self._send(403, "")
                    return self._send(
                        200, f"projects/123456/machineTypes/{kind}", {"Metadata-Flavor": "Google"}
                    )
                if fake.cloud == "azure" and path == "/metadata/instance/compute/vmSize" and kind:
                    if self.headers.get("Metadata") != "true" or "api-version" not in self.path:
                        return self._send(400, "")
                    return self._send(200, kind)
                if fake.cloud == "gcp" and path == "/computeMetadata/v1/instance/zone":
                    if self.headers.get("Metadata-Flavor") != "Google":
                        return self._send(403, "")
                    return self._send(
                        200, f"projects/123456/zones/{fake.region}-b", {"Metadata-Flavor": "Google"}
                    )
                if fake.cloud == "azure" and path == "/metadata/instance/compute/location":
                    if self.headers.get("Metadata") != "true" or "api-version" not in self.path:
                        return self._send(400, "")
                    return self._send(200, fake.region)
                self._send(404, "")

            def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
                data = body.encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
