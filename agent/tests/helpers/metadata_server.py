"""TEST ONLY: a stand-in for the GKE metadata server's token endpoints, on loopback.

Imitates, at the network boundary, what google-auth 2.62 (google/auth/compute_engine/_metadata.py)
asks a Compute Engine / GKE metadata server for when Application Default Credentials fall back
to it (https://cloud.google.com/compute/docs/metadata/querying-metadata):
- ``GET /`` with ``Metadata-Flavor: Google`` in the answer (the "am I on GCE" ping);
- ``GET /computeMetadata/v1/instance/service-accounts/default/?recursive=true`` (email, scopes);
- ``GET /computeMetadata/v1/instance/service-accounts/default/token`` (an OAuth access token).
A worker is pointed at it with GCE_METADATA_HOST and GCE_METADATA_IP (google-auth's own
environment variables). ``refuse=True`` answers the token request with 403, as a pod whose
Kubernetes service account has no Google identity behind it gets no token.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SA_EMAIL = "voice-agent@voice-agent-test.iam.gserviceaccount.com"
SA_PREFIX = "/computeMetadata/v1/instance/service-accounts/default"


class MetadataServer:
    def __init__(self, *, refuse: bool) -> None:
        self.refuse = refuse
        self.token_requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                return None

            def do_GET(self) -> None:  # noqa: N802 (http.server's spelling)
                path = self.path.split("?", 1)[0]
                if path == "/":
                    self._send(200, "text/plain", "")
                elif path.rstrip("/") == SA_PREFIX:
                    body = {"email": SA_EMAIL, "scopes": ["https://www.googleapis.com/auth/cloud-platform"], "aliases": ["default"]}
                    self._send(200, "application/json", json.dumps(body))
                elif path == f"{SA_PREFIX}/token":
                    server.token_requests += 1
                    if server.refuse:
                        self._send(403, "text/plain", "no Google identity is bound to this workload")
                    else:
                        body = {"access_token": "ya29.test-token", "expires_in": 3599, "token_type": "Bearer"}
                        self._send(200, "application/json", json.dumps(body))
                else:
                    self._send(404, "text/plain", "not found")

            def _send(self, status: int, content_type: str, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Metadata-Flavor", "Google")
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{host}:{port}"

    def env(self) -> dict[str, str]:
        """What points google-auth at this server (and at nothing else)."""
        return {"GCE_METADATA_HOST": self.address, "GCE_METADATA_IP": self.address}

    def __enter__(self) -> MetadataServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
