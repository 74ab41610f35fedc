"""TEST ONLY: the Kubernetes API server's pod PATCH endpoint, on loopback, over TLS.

No API server runs on our machines or in CI, so the worker's deletion-cost writes
(voice_agent/deletion_cost.py) go to this stand-in at the network boundary: the real client
code, a real TLS connection trusted through a CA file, a real bearer token read from a file.

What it imitates (Kubernetes API reference v1.33, "Pod" -> "patch": PATCH
/api/v1/namespaces/{namespace}/pods/{name}; "API Concepts" -> patch content types; RBAC and
authentication docs for the refusals), and how each answer looks:
- 200 with the updated Pod for ``application/merge-patch+json`` (RFC 7386 merge of the body
  into the stored object; a null value deletes a key);
- 401 Unauthorized Status without the expected bearer token;
- 403 Forbidden Status when the token's user may not patch that pod (RBAC: another namespace;
  the admission policy of k8s/deletion_cost.py: another pod), message in the API's wording
  ``pods "NAME" is forbidden: User "system:serviceaccount:NS:SA" cannot patch resource "pods"
  in API group "" in the namespace "NS"``;
- 404 NotFound Status for an unknown pod; 415 UnsupportedMediaType for other content types;
- a queue of scripted failures (e.g. 503 while the control plane is upgraded).
And the TokenReview endpoint the Places tool server asks (Kubernetes API reference,
"TokenReview v1 authentication.k8s.io" -> create: POST /apis/authentication.k8s.io/v1/tokenreviews),
when ``issuer`` is set: 201 with ``status.authenticated`` true, the service account as
``status.user`` (username, groups, and the pod in ``extra``) and the intersection of the token's
and ``spec.audiences`` in ``status.audiences``, for a token the issuer signed, unexpired, with a
requested audience, whose bound pod (claim ``kubernetes.io.pod.uid``) is in ``live_pods``;
otherwise 201 with ``status.error`` (an invalidated token's wording follows
pkg/serviceaccount/claims.go). 403 when the caller may not create TokenReviews
(``review_forbidden``), 401 without the expected bearer token.
Every request is recorded (method, path, content type, token, body) for the tests.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MERGE_PATCH = "application/merge-patch+json"


@dataclass
class Recorded:
    method: str
    path: str
    content_type: str
    token: str
    body: Any


@dataclass
class FakeKubernetesApi:
    workdir: Path
    token: str
    user: str = "system:serviceaccount:voice-agents:voice-agent"
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    allowed_namespace: str = "voice-agents"
    issuer: Any = None  # a cluster_issuer.ClusterIssuer: enables TokenReview
    live_pods: set[str] = field(default_factory=set)  # pod uids that exist
    review_forbidden: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def add_pod(self, namespace: str, name: str) -> None:
        self.pods[(namespace, name)] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "annotations": {}},
            "spec": {"containers": [{"name": "agent"}]},
        }

    def annotations(self, namespace: str, name: str) -> dict[str, str]:
        with self.lock:
            return dict(self.pods[(namespace, name)]["metadata"].get("annotations") or {})

    def patches(self) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == "PATCH"]

    # ---- lifecycle -------------------------------------------------------------------------
    @property
    def ca_path(self) -> Path:
        return self.workdir / "ca.crt"

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def write_credentials(self, directory: Path, token: str | None = None) -> None:
        """What the kubelet projects into the pod: token and ca.crt."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "token").write_text(token if token is not None else self.token)
        (directory / "ca.crt").write_bytes(self.ca_path.read_bytes())

    def token_review_env(self, directory: Path) -> dict[str, str]:
        """A tool server's view of this API: its own token and the CA, as k8s/tool_server.py projects them."""
        self.write_credentials(directory)
        return {"PLACES_MCP_KUBE_API_URL": self.url, "PLACES_MCP_KUBE_TOKEN_FILE": str(directory / "token"),
                "PLACES_MCP_KUBE_CA_FILE": str(directory / "ca.crt")}

    def start(self) -> FakeKubernetesApi:
        context = self._tls_context()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_PATCH(self) -> None:  # noqa: N802
                api._patch(self)

            def do_GET(self) -> None:  # noqa: N802
                api._status(self, 405, "MethodNotAllowed", "the stand-in serves PATCH of pods and TokenReview only")

            def do_POST(self) -> None:  # noqa: N802
                api._token_review(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, name="fake-kube-api", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _tls_context(self) -> ssl.SSLContext:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.workdir.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        key_path = self.workdir / "apiserver.key"
        self.ca_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_path, key_path)
        return context

    # ---- the endpoint ----------------------------------------------------------------------
    def _patch(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length)
        auth = h.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        content_type = (h.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = raw.decode(errors="replace")
        with self.lock:
            self.requests.append(Recorded("PATCH", h.path, content_type, token, body))
            scripted = self.fail_next.pop(0) if self.fail_next else None
        parts = h.path.split("?")[0].strip("/").split("/")
        if token != self.token:
            return self._status(h, 401, "Unauthorized", "Unauthorized")
        if scripted is not None:
            return self._status(h, scripted, "ServiceUnavailable", "the server is currently unable to handle the request")
        if len(parts) != 6 or parts[:3] != ["api", "v1", "namespaces"] or parts[4] != "pods":
            return self._status(h, 404, "NotFound", "the server could not find the requested resource")
        namespace, name = parts[3], parts[5]
        if namespace != self.allowed_namespace:
            return self._status(h, 403, "Forbidden", f'pods "{name}" is forbidden: User "{self.user}" cannot patch '
                                                     f'resource "pods" in API group "" in the namespace "{namespace}"')
        if content_type != MERGE_PATCH:
            return self._status(h, 415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                                                                f"accepted media types include: {MERGE_PATCH}")
        with self.lock:
            pod = self.pods.get((namespace, name))
            if pod is None:
                return self._status(h, 404, "NotFound", f'pods "{name}" not found')
            _merge(pod, body)
            answer = json.dumps(pod).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(answer)))
        h.end_headers()
        h.wfile.write(answer)

    def reviews(self) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == "POST"]

    def _token_review(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        auth = h.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        try:
            body = json.loads(h.rfile.read(length) or b"null")
        except ValueError:
            body = None
        with self.lock:
            self.requests.append(Recorded("POST", h.path, h.headers.get("Content-Type") or "", token, body))
            scripted = self.fail_next.pop(0) if self.fail_next else None
        if h.path.split("?")[0] != "/apis/authentication.k8s.io/v1/tokenreviews" or self.issuer is None:
            return self._status(h, 404, "NotFound", "the server could not find the requested resource")
        if token != self.token:
            return self._status(h, 401, "Unauthorized", "Unauthorized")
        if scripted is not None:
            return self._status(h, scripted, "ServiceUnavailable", "the server is currently unable to handle the request")
        if self.review_forbidden:
            return self._status(h, 403, "Forbidden", f'tokenreviews.authentication.k8s.io is forbidden: User "{self.user}" '
                                                     'cannot create resource "tokenreviews" in API group '
                                                     '"authentication.k8s.io" at the cluster scope')
        spec = (body or {}).get("spec") or {}
        status = self._review(str(spec.get("token", "")), list(spec.get("audiences") or []))
        answer = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "metadata": {},
                             "spec": spec, "status": status}).encode()
        h.send_response(201)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(answer)))
        h.end_headers()
        h.wfile.write(answer)

    def _review(self, token: str, audiences: list[str]) -> dict[str, Any]:
        import jwt

        try:
            kid = str(jwt.get_unverified_header(token).get("kid", ""))
            key = self.issuer.public_keys()[kid]
            # 60 s either way, as the API server allows (pkg/serviceaccount/jwt.go validates with
            # go-jose's DefaultLeeway of one minute)
            claims = jwt.decode(token, key, algorithms=["RS256"], leeway=60, options={"verify_aud": False})
        except (jwt.PyJWTError, KeyError):
            return {"user": {}, "error": "[invalid bearer token, square/go-jose: error in cryptographic primitive]"}
        granted = [a for a in audiences if a in (claims.get("aud") or [])] if audiences else []
        if audiences and not granted:
            return {"user": {}, "error": "[invalid bearer token, token audiences [...] is invalid for the target audiences]"}
        bound = (claims.get("kubernetes.io") or {}).get("pod") or {}
        if bound and bound.get("uid") not in self.live_pods:
            return {"user": {}, "error": "[invalid bearer token, service account token has been invalidated]"}
        ns = claims["kubernetes.io"]["namespace"]
        extra = {"authentication.kubernetes.io/pod-name": [bound.get("name", "")],
                 "authentication.kubernetes.io/pod-uid": [bound.get("uid", "")]} if bound else {}
        return {"authenticated": True, "audiences": granted,
                "user": {"username": claims["sub"], "uid": claims["kubernetes.io"]["serviceaccount"]["uid"],
                         "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
                         "extra": extra}}

    def _status(self, h: BaseHTTPRequestHandler, code: int, reason: str, message: str) -> None:
        body = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": message, "reason": reason, "code": code}).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


def _merge(target: dict[str, Any], patch: Any) -> None:
    """RFC 7386 JSON merge patch, in place."""
    if not isinstance(patch, dict):
        return
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value
