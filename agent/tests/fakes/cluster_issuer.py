"""TEST ONLY: a Kubernetes service-account token issuer on loopback (the issuer is imitated).

What the tool server checks a caller against, the way a cluster publishes it:
- OIDC discovery, Kubernetes "Service Account Issuer Discovery" (KEP-1393;
  https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/
  #service-account-issuer-discovery): GET <issuer>/.well-known/openid-configuration names
  `jwks_uri`; the key set holds the public signing keys (RS256), each with a `kid`. GKE serves
  the same documents at https://container.googleapis.com/v1/projects/P/locations/L/clusters/C.
- Projected tokens (https://kubernetes.io/docs/concepts/storage/projected-volumes/
  #serviceaccounttoken): `iss`, `aud` (the projected volume's audience, as a list), `sub`
  (system:serviceaccount:<ns>:<name>), `exp`, `iat`, `nbf` and a `kubernetes.io` claim naming
  the namespace, service account and pod.

The signing key is made here (RSA 2048) and never leaves the test; `rotate()` swaps it for a new
one with a new `kid`, as a control plane's key rotation does. Needs only cryptography and PyJWT,
which both the agent's and the tool server's venvs have.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


def _new_key() -> tuple[str, Any]:
    return "k-" + secrets.token_hex(6), rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class ClusterIssuer:
    keys: list[tuple[str, Any]] = field(default_factory=lambda: [_new_key()])
    requests: list[str] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> ClusterIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                issuer.requests.append(self.path)
                status, body = issuer.answer(self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return None

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name="fake-issuer", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        if path == "/.well-known/openid-configuration":
            return 200, {"issuer": self.url, "jwks_uri": f"{self.url}/jwks", "response_types_supported": ["id_token"],
                         "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"]}
        if path == "/jwks":
            return 200, {"keys": [self._public_jwk(kid, key) for kid, key in self.keys]}
        return 404, {"error": "not found"}

    def rotate(self) -> None:
        """A new signing key; the old one stays published (tokens it signed are still valid)."""
        self.keys.insert(0, _new_key())

    def token(self, *, audience: str | list[str], namespace: str = "voice-agents", service_account: str = "voice-agent",
              lifetime_s: int = 3600, issued_ago_s: int = 0, issuer: str | None = None, signing_key: Any = None,
              pod_name: str = "voice-agent-0", pod_uid: str = "p-1") -> str:
        now = int(time.time()) - issued_ago_s
        kid, key = self.keys[0]
        claims = {
            "iss": issuer or self.url,
            "aud": [audience] if isinstance(audience, str) else audience,
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
            "iat": now, "nbf": now, "exp": now + lifetime_s,
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": service_account, "uid": "u-1"},
                              "pod": {"name": pod_name, "uid": pod_uid}},
        }
        return jwt.encode(claims, signing_key or key, algorithm="RS256", headers={"kid": kid})

    def write_token(self, path: Path, **claims: Any) -> str:
        """What the kubelet does for a projected token: write it to a file, replaced atomically."""
        token = self.token(**claims)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(token)
        tmp.replace(path)
        return token

    def public_keys(self) -> dict[str, Any]:
        return {kid: key.public_key() for kid, key in self.keys}

    @staticmethod
    def _public_jwk(kid: str, key: Any) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def stranger_key() -> Any:
    """A key the issuer never published: a forged token's."""
    return _new_key()[1]
