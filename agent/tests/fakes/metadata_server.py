"""TEST ONLY: the GCE metadata server's token endpoint on loopback, for Application Default
Credentials.

On GKE the pod reaches Google with Workload Identity: google-auth finds no key file, asks the
metadata server whether it runs on Google Cloud and then fetches an access token for the
pod's service account. This server answers those requests the way the metadata server does
(https://cloud.google.com/compute/docs/metadata/querying-metadata and
https://cloud.google.com/kubernetes-engine/docs/concepts/workload-identity#metadata_server):

- every request must carry ``Metadata-Flavor: Google`` and every answer carries it back
  (google-auth's ``_metadata.ping`` checks the header to detect the server);
- ``instance/service-accounts/default/token`` returns ``{access_token, expires_in,
  token_type}``; ``instance/service-accounts/default/`` (recursive) names the account;
- ``project/project-id`` and ``universe/universe-domain`` answer plain text.

google-auth 2.62.2 (installed) reads the server's address from ``GCE_METADATA_HOST`` (token and
attribute requests, ``compute_engine/_metadata.py: _get_metadata_root``) and
``GCE_METADATA_IP`` (the detection ping, ``_get_metadata_ip_root``), both ``host:port``; the
worker under test gets both, so the real google-auth and google-genai code run unchanged.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
ACCOUNT_PATH = "/computeMetadata/v1/instance/service-accounts/default/"
# the metadata server hands out tokens valid for about an hour (expires_in counts down)
TOKEN_LIFETIME_SECONDS = 3599


@dataclass
class MetadataServer:
    project: str
    email: str = "voice-agent@voice-agent-test.iam.gserviceaccount.com"
    token: str = field(default_factory=lambda: "ya29.fake-" + secrets.token_urlsafe(24))
    requests: list[str] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        assert self._httpd is not None
        return f"127.0.0.1:{self._httpd.server_address[1]}"

    def env(self) -> dict[str, str]:
        """What the worker needs so google-auth finds this server instead of 169.254.169.254."""
        return {"GCE_METADATA_HOST": self.host, "GCE_METADATA_IP": self.host}

    def tokens_issued(self) -> int:
        return sum(1 for path in self.requests if path.startswith(TOKEN_PATH))

    def start(self) -> MetadataServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server.requests.append(self.path)
                if self.headers.get("Metadata-Flavor") != "Google":
                    self._answer(403, "text/plain", "Missing Metadata-Flavor:Google header.")
                    return
                status, kind, body = server.answer(self.path)
                self._answer(status, kind, body)

            def _answer(self, status: int, kind: str, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Metadata-Flavor", "Google")
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return None

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="fake-metadata", daemon=True
        )
        self._thread.start()
        return self

    def answer(self, path: str) -> tuple[int, str, str]:
        route = path.split("?", 1)[0]
        if route in ("", "/"):
            return 200, "application/text", "computeMetadata/\n"
        if route == TOKEN_PATH:
            body = {
                "access_token": self.token,
                "expires_in": TOKEN_LIFETIME_SECONDS,
                "token_type": "Bearer",
            }
            return 200, "application/json", json.dumps(body)
        if route == ACCOUNT_PATH:
            body = {
                "aliases": ["default"],
                "email": self.email,
                "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            }
            return 200, "application/json", json.dumps(body)
        if route == "/computeMetadata/v1/project/project-id":
            return 200, "application/text", self.project
        if route == "/computeMetadata/v1/universe/universe-domain":
            return 200, "application/text", "googleapis.com"
        if route == "/computeMetadata/v1/instance/service-accounts/default/email":
            return 200, "application/text", self.email
        return 404, "text/html", "Not Found"

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
