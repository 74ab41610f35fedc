"""A real Kubernetes control plane on loopback: etcd, kube-apiserver and, when asked,
kube-controller-manager and kube-scheduler, built by scripts/setup-kube.sh at the version in
tests/k8s/kube/VERSION.

Configured as a cluster is where it matters to the stack: TLS with a CA of its own, client
certificates (an admin in system:masters; the controller manager and the scheduler under their
own bootstrap identities), `--authorization-mode=Node,RBAC`, service-account tokens signed with
a key pair generated here (so TokenRequest, bound tokens and their pod-name extra are real), and
the admission chain including ValidatingAdmissionPolicy. What a cluster has that this does not:
kubelets (agent/tests/term registers its own nodes), kube-proxy, a network, cloud controllers.
Without a controller manager nothing creates a namespace's `default` ServiceAccount or its
`kube-root-ca.crt` ConfigMap; `ensure_namespace_basics` does it.

Standard library only (and the `openssl` and binaries), so the infra suite and the agent's TERM
harness (another venv) load the same file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VERSION_FILE = ROOT / "tests" / "k8s" / "kube" / "VERSION"
SETUP = "bash scripts/setup-kube.sh"
# The cluster's service range: a setting the API server needs to allocate Service IPs; nothing
# routes to it here.
SERVICE_CIDR = "10.96.0.0/16"
# What the admission chain runs, in addition to the API server's defaults (which already hold
# NamespaceLifecycle, ServiceAccount, Priority, ValidatingAdmissionPolicy and the rest,
# kube-apiserver --help at the version built): NodeRestriction as GKE enables it.
ADMISSION_PLUGINS = "NodeRestriction,ValidatingAdmissionPolicy,ServiceAccount,Priority,NamespaceLifecycle"
ISSUER = "https://kubernetes.default.svc.cluster.local"
READY_TIMEOUT_S = 60.0
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"


def version() -> str:
    return VERSION_FILE.read_text().strip()


def bin_dir() -> Path:
    return ROOT / ".tools" / "kube" / version() / "bin"


COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


SERVER = ("etcd", "kube-apiserver")
CONTROLLERS = ("kube-controller-manager", "kube-scheduler")


# scripts/test.sh runs the suite in two phases so the cold build of these binaries overlaps the
# tests that do not need them: first everything but the tests marked `controlplane`, with this
# variable set, then the marked ones once setup-kube.sh has finished. A test that reaches the
# control plane in the first phase lacks its marker; it is told so on every machine, instead of
# passing where the build is warm and failing where it is cold.
BUILDING_ENV = "GVA_KUBE_BUILDING"


def unavailable(components: tuple[str, ...] = COMPONENTS) -> str | None:
    """Why the control plane cannot start here, or None when it can."""
    if os.environ.get(BUILDING_ENV) == "1":
        return (f"{BUILDING_ENV}=1: scripts/test.sh may still be building the control plane; "
                "a test that starts it must be marked `controlplane` to run after the build")
    where = bin_dir()
    missing = [c for c in components if not os.access(where / c, os.X_OK)]
    if missing:
        shown = where.relative_to(ROOT) if where.is_relative_to(ROOT) else where
        return f"{', '.join(missing)} not built under {shown}: run `{SETUP}`"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiError(Exception):
    """A non-2xx answer: the status and the server's own message (a Status object's)."""

    def __init__(self, status: int, message: str, body: Any):
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message, self.body = status, message, body


@dataclass(frozen=True)
class Identity:
    """How a request authenticates: a client certificate (cert, key) or a bearer token."""

    cert: tuple[Path, Path] | None = None
    token: str | None = None


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Pki:
    """A CA, the API server's serving certificate, client certificates, and the
    service-account signing pair (RSA 2048, RS256 as kubeadm generates it)."""

    def __init__(self, directory: Path):
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
        _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
                 "-subj", "/CN=test-cluster-ca", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature", cwd=directory)
        self.ca = directory / "ca.crt"
        self.ca_key = directory / "ca.key"
        self.serving = self._issue("apiserver", "/CN=kube-apiserver",
                                   "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc",
                                   "extendedKeyUsage=serverAuth")
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key", cwd=directory)
        _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)
        self.sa_key, self.sa_pub = directory / "sa.key", directory / "sa.pub"

    def _issue(self, name: str, subject: str, *extensions: str) -> tuple[Path, Path]:
        ext = self.dir / f"{name}.ext"
        # key identifiers: Python's strict X.509 checks (3.13+) want the authority key id
        ext.write_text("\n".join(("subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid", *extensions)) + "\n")
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=self.dir)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-out", f"{name}.crt", "-extfile", ext.name, cwd=self.dir)
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"

    def client(self, name: str, user: str, *groups: str) -> Identity:
        subject = "".join(f"/O={g}" for g in groups) + f"/CN={user}"
        return Identity(cert=self._issue(name, subject, "extendedKeyUsage=clientAuth"))


@dataclass
class ControlPlane:
    """Started by `start()`; every process is this object's and ends with `stop()`."""

    workdir: Path
    # kube-controller-manager with all its default controllers, and kube-scheduler
    controllers: bool = False
    # kube-controller-manager with the one controller that type-checks admission policies' CEL
    # and writes status.typeChecking (it runs there, not in the API server)
    policy_status: bool = False
    port: int = 0
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    pki: Pki | None = None
    admin: Identity | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> "ControlPlane":
        reason = unavailable(SERVER + (CONTROLLERS if self.controllers else ())
                             + (("kube-controller-manager",) if self.policy_status else ()))
        if reason:
            raise FileNotFoundError(reason)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki = Pki(self.workdir / "pki")
        self.admin = self.pki.client("admin", "test-admin", "system:masters")
        try:
            self._start_etcd()
            self._start_apiserver()
            self.wait_ready()
            if self.controllers or self.policy_status:
                self._start_controllers()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "wb")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                   start_new_session=True)
        log.close()
        self.processes[name] = process
        return process

    def log(self, name: str, tail: int = 4000) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        self._spawn("etcd", [
            str(bin_dir() / "etcd"), "--data-dir", str(self.workdir / "etcd"), "--name", "test",
            "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"test=http://127.0.0.1:{peer}",
            # one member on tmpfs-like scratch: no fsync wait matters to the tests
            "--unsafe-no-fsync", "--log-level", "warn",
        ])

    def _start_apiserver(self) -> None:
        assert self.pki is not None
        self.port = free_port()
        cert, key = self.pki.serving
        self._spawn("kube-apiserver", [
            str(bin_dir() / "kube-apiserver"),
            "--etcd-servers", self.etcd_url,
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", str(self.port),
            "--tls-cert-file", str(cert), "--tls-private-key-file", str(key),
            "--client-ca-file", str(self.pki.ca),
            "--authorization-mode", "Node,RBAC",
            "--enable-admission-plugins", ADMISSION_PLUGINS,
            "--service-account-issuer", ISSUER,
            "--service-account-key-file", str(self.pki.sa_pub),
            "--service-account-signing-key-file", str(self.pki.sa_key),
            "--service-cluster-ip-range", SERVICE_CIDR,
            "--anonymous-auth=false",
            "--profiling=false",
            "--cert-dir", str(self.workdir / "apiserver-certs"),
        ])

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode} during start:\n{self.log(name)}")
            try:
                status, body = self.raw("GET", "/readyz")
                if status == 200:
                    return
                last = body.decode(errors="replace")
            except OSError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise TimeoutError(f"kube-apiserver not ready within {timeout}s: {last}\n{self.log('kube-apiserver')}")

    def kubeconfig(self, name: str, identity: Identity) -> Path:
        """A kubeconfig file for `identity` (for the controller manager, the scheduler, kubectl)."""
        assert self.pki is not None
        user: dict[str, Any] = {}
        if identity.cert:
            user = {"client-certificate": str(identity.cert[0]), "client-key": str(identity.cert[1])}
        if identity.token:
            user = {"token": identity.token}
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": self.url, "certificate-authority": str(self.pki.ca)}}],
            "users": [{"name": name, "user": user}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": name}}],
        }
        path = self.workdir / f"{name}.kubeconfig"
        path.write_text(json.dumps(config))  # JSON is YAML
        return path

    def _start_controllers(self) -> None:
        assert self.pki is not None
        kcm = self.kubeconfig("kube-controller-manager", self.pki.client("kcm", "system:kube-controller-manager"))
        scheduler = self.kubeconfig("kube-scheduler", self.pki.client("scheduler", "system:kube-scheduler"))
        # kubeadm's flags for its controller manager, less node IPAM and the cluster signer
        self._spawn("kube-controller-manager", [
            str(bin_dir() / "kube-controller-manager"),
            "--kubeconfig", str(kcm), "--authentication-kubeconfig", str(kcm), "--authorization-kubeconfig", str(kcm),
            "--bind-address", "127.0.0.1", "--secure-port", str(free_port()),
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            "--service-account-private-key-file", str(self.pki.sa_key),
            "--root-ca-file", str(self.pki.ca),
            "--controllers", "*" if self.controllers else "validatingadmissionpolicy-status-controller",
        ])
        if not self.controllers:
            return
        self._spawn("kube-scheduler", [
            str(bin_dir() / "kube-scheduler"),
            "--kubeconfig", str(scheduler), "--authentication-kubeconfig", str(scheduler),
            "--authorization-kubeconfig", str(scheduler),
            "--bind-address", "127.0.0.1", "--secure-port", str(free_port()),
            "--leader-elect=false",
        ])

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        self.processes.clear()

    # ---- HTTP -----------------------------------------------------------------------------
    def _context(self, identity: Identity | None) -> ssl.SSLContext:
        assert self.pki is not None
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        if identity is not None and identity.cert:
            context.load_cert_chain(str(identity.cert[0]), str(identity.cert[1]))
        return context

    def raw(self, method: str, path: str, body: bytes | None = None, *, content_type: str = "application/json",
            identity: Identity | None = None) -> tuple[int, bytes]:
        identity = identity or self.admin
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        if identity is not None and identity.token:
            headers["Authorization"] = f"Bearer {identity.token}"
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, context=self._context(identity), timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def call(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
             identity: Identity | None = None, query: dict[str, str] | None = None) -> Any:
        """JSON in, JSON out; a non-2xx answer raises ApiError with the server's message."""
        if query:
            path = f"{path}?{urllib.parse.urlencode(query)}"
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        status, raw = self.raw(method, path, data, content_type=content_type, identity=identity)
        try:
            parsed = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            parsed = raw.decode(errors="replace")
        if not 200 <= status < 300:
            message = parsed.get("message", str(parsed)) if isinstance(parsed, dict) else str(parsed)
            raise ApiError(status, message, parsed)
        return parsed

    # ---- what a cluster's controllers would have made ----------------------------------------
    def ensure_namespace_basics(self, namespace: str) -> None:
        """The `default` ServiceAccount (serviceaccount controller) and the `kube-root-ca.crt`
        ConfigMap (root-ca-cert-publisher) that kube-controller-manager creates in every
        namespace; here only when no controller manager runs."""
        assert self.pki is not None
        objects = [
            (f"/api/v1/namespaces/{namespace}/serviceaccounts/default",
             {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}}),
            (f"/api/v1/namespaces/{namespace}/configmaps/kube-root-ca.crt",
             {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt", "namespace": namespace},
              "data": {"ca.crt": self.pki.ca.read_text()}}),
        ]
        for path, obj in objects:
            self.call("PATCH", path, obj, content_type=APPLY_PATCH,
                      query={"fieldManager": "test-controller-stand-in", "force": "true"})

    # ---- discovery and server-side apply -------------------------------------------------------
    def resource_of(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of a kind, from the server's discovery document."""
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        for resource in self.call("GET", base)["resources"]:
            if resource["kind"] == kind and "/" not in resource["name"]:
                return resource["name"], bool(resource["namespaced"])
        raise LookupError(f"the server serves no {kind} in {api_version}")

    def object_path(self, obj: dict[str, Any]) -> str:
        api_version, kind = obj["apiVersion"], obj["kind"]
        plural, namespaced = self.resource_of(api_version, kind)
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        metadata = obj["metadata"]
        if namespaced:
            base += f"/namespaces/{metadata.get('namespace', 'default')}"
        return f"{base}/{plural}/{metadata['name']}"

    def apply(self, obj: dict[str, Any], *, field_manager: str = "gke-voice-agents-test",
              identity: Identity | None = None, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply with strict field validation, as `kubectl apply --server-side
        --validate=strict` sends it. JSON is YAML, so the body is the object as JSON."""
        query = {"fieldManager": field_manager, "fieldValidation": "Strict", "force": "true"}
        if dry_run:
            query["dryRun"] = "All"
        return self.call("PATCH", self.object_path(obj), obj, content_type=APPLY_PATCH, identity=identity,
                         query=query)

    def wait_for(self, what: str, check, timeout: float = 60.0, interval: float = 0.2):
        """Poll `check()` until it returns something truthy (no timed assertion: the timeout
        only bounds a wait for a state the controllers must reach)."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not reached within {timeout}s")
            time.sleep(interval)

    def request_token(self, namespace: str, service_account: str, *, pod: dict[str, Any] | None = None,
                      seconds: int = 3600) -> str:
        """A token from the TokenRequest API, bound to `pod` when given (as the kubelet asks
        for a projected token: the pod's name and uid go into the token's claims and come back
        as the `authentication.kubernetes.io/pod-name` extra)."""
        spec: dict[str, Any] = {"expirationSeconds": seconds}
        if pod is not None:
            spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1", "name": pod["metadata"]["name"],
                                      "uid": pod["metadata"]["uid"]}
        answer = self.call("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
                           {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
        return answer["status"]["token"]

    def kubectl(self, *args: str, identity: Identity | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        config = self.kubeconfig("kubectl-admin" if identity is None else "kubectl-other", identity or self.admin)
        return subprocess.run([str(bin_dir() / "kubectl"), "--kubeconfig", str(config), *args],
                              capture_output=True, text=True, timeout=timeout)


def start(workdir: Path, **options: Any) -> ControlPlane:
    if shutil.which("openssl") is None:
        raise FileNotFoundError("openssl is required to make the test cluster's certificates (apt-get install openssl)")
    return ControlPlane(workdir, **options).start()
