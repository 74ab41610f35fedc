"""Envelope encryption of a checkpoint: the conversation is never stored in the clear.

Per call, a random 256-bit data key encrypts every snapshot with AES-256-GCM (``cryptography``,
already pinned in agent/requirements.txt). The data key itself is stored only wrapped by Cloud
KMS (REST v1 ``cryptoKeys.encrypt`` / ``cryptoKeys.decrypt``,
https://cloud.google.com/kms/docs/reference/rest/v1/projects.locations.keyRings.cryptoKeys/encrypt),
called with the pod's own Google identity (Workload Identity, through google-auth's Application
Default Credentials, as livekit-plugins-google gets its Vertex credentials). Only that identity
holds ``roles/cloudkms.cryptoKeyEncrypterDecrypter`` on the key (infra/checkpoint_key.py), so a
copy of the database (a dump, a backup, a point-in-time restore) holds ciphertext only.

- KMS is asked once per call: the wrapped key is cached with the data key for the call's life
  (a resumed call unwraps the stored key once and goes on with it).
- Each snapshot and the wrapped key are bound to their call by additional authenticated data
  (a digest of the room name and the room's SID): a row copied under another room, or into
  another room instance of the same name, does not decrypt there.
- Failures are typed (``EnvelopeError.reason``); the writer drops the snapshot (the call goes on)
  and a resume that cannot open its row starts fresh. Nothing here touches the event loop: both
  directions run in a worker thread, every HTTP request bounded by ``KMS_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from typing import Any

# Imported with the module, not at first use: session.py (and so this module) is preloaded in
# the forkserver, so job processes share them instead of importing them in a call (the same
# reason recovery/checkpoints.py imports asyncpg at the top).
import google.auth
import google.auth.exceptions
import requests
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.auth.transport.requests import AuthorizedSession

ENVELOPE_KEY = "voice_agent_envelope"
FORMAT = 1
ALGORITHM = "AES-256-GCM"
# 96-bit nonces drawn at random: NIST SP 800-38D (8.3) allows 2^32 of them per key; a call
# writes one snapshot per conversation item, far below that.
NONCE_BYTES = 12
KMS_SCOPE = "https://www.googleapis.com/auth/cloudkms"
# One KMS request (and one token refresh) may take this long; a snapshot waits for it in the
# writer's thread, never on the call's loop, and the lease renews on its own meanwhile.
KMS_TIMEOUT_SECONDS = 3.0
# Reasons, also the checkpoint_dropped / checkpoint_unreadable ``reason`` label.
KMS_UNREACHABLE = "kms_unreachable"  # network, timeout, 5xx/429: may work on the next snapshot
KMS_DENIED = "kms_denied"  # no credentials, 4xx (no permission, key disabled, wrong AAD)
TAMPERED = "tampered"  # the ciphertext does not authenticate (another call's row, or altered)
NOT_ENCRYPTED = "not_encrypted"  # a plaintext row where rows must be encrypted
ENCRYPTED = "encrypted"  # an encrypted row where this job has no key (plaintext mode)
OTHER_KEY = "other_key"  # a row wrapped by another KMS key than the configured one
MALFORMED = "malformed"


class EnvelopeError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}"[:300])
        self.reason = reason


def call_aad(room: str, room_sid: str) -> bytes:
    """What binds a row to its call. A digest, so the room name (which may hold a phone number)
    is not sent to KMS."""
    context = json.dumps(["voice_agent_checkpoint", FORMAT, room, room_sid], separators=(",", ":"))
    return hashlib.sha256(context.encode()).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise EnvelopeError(MALFORMED, "expected a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise EnvelopeError(MALFORMED, f"not base64: {exc}") from exc


class KmsClient:
    """The two Cloud KMS REST calls, with the process's Application Default Credentials."""

    def __init__(self, key_name: str, endpoint: str, *, timeout: float = KMS_TIMEOUT_SECONDS) -> None:
        self.key_name, self._endpoint, self._timeout = key_name, endpoint.rstrip("/"), timeout
        self._session: Any = None
        self._lock = threading.Lock()

    def encrypt(self, plaintext: bytes, aad: bytes) -> str:
        body = {"plaintext": _b64(plaintext), "additionalAuthenticatedData": _b64(aad)}
        answer = self._post("encrypt", body)
        ciphertext = answer.get("ciphertext")
        if not isinstance(ciphertext, str) or not ciphertext:
            raise EnvelopeError(KMS_UNREACHABLE, "encrypt answered without a ciphertext")
        return ciphertext

    def decrypt(self, ciphertext: str, aad: bytes) -> bytes:
        answer = self._post("decrypt", {"ciphertext": ciphertext, "additionalAuthenticatedData": _b64(aad)})
        return _unb64(answer.get("plaintext"))

    def _post(self, verb: str, body: dict[str, str]) -> dict[str, Any]:
        try:
            response = self._authorized().post(f"{self._endpoint}/v1/{self.key_name}:{verb}",
                                               json=body, timeout=self._timeout)
        except EnvelopeError:
            raise
        except (google.auth.exceptions.RefreshError, google.auth.exceptions.DefaultCredentialsError) as exc:
            raise EnvelopeError(KMS_DENIED, f"no Google credentials for KMS: {type(exc).__name__}: {exc}") from exc
        except (google.auth.exceptions.TransportError, requests.RequestException, OSError) as exc:
            raise EnvelopeError(KMS_UNREACHABLE, f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise EnvelopeError(KMS_UNREACHABLE, f"KMS {verb} answered {response.status_code}")
        if response.status_code != 200:
            # Google API errors carry {"error": {"status": ..., "message": ...}}; the message
            # names the key and the permission, never the data
            status = _error_status(response)
            raise EnvelopeError(KMS_DENIED, f"KMS {verb} answered {response.status_code} {status}")
        try:
            answer = response.json()
        except ValueError as exc:
            raise EnvelopeError(KMS_UNREACHABLE, f"KMS {verb} answered non-JSON") from exc
        if not isinstance(answer, dict):
            raise EnvelopeError(KMS_UNREACHABLE, f"KMS {verb} answered {type(answer).__name__}")
        return answer

    def _authorized(self) -> Any:
        with self._lock:
            if self._session is None:
                try:
                    credentials, _ = google.auth.default(scopes=[KMS_SCOPE])
                except google.auth.exceptions.DefaultCredentialsError as exc:
                    raise EnvelopeError(KMS_DENIED, f"no Google credentials for KMS: {exc}") from exc
                self._session = AuthorizedSession(credentials, refresh_timeout=self._timeout)
            return self._session


def _error_status(response: Any) -> str:
    try:
        error = response.json().get("error", {})
        return str(error.get("status", ""))[:40]
    except Exception:  # noqa: BLE001 - only for the log line
        return ""


class CallEnvelope:
    """One call's data key: seals its snapshots, opens the row it resumes."""

    def __init__(self, kms: KmsClient, *, room: str, room_sid: str) -> None:
        self._kms = kms
        self._aad = call_aad(room, room_sid)
        self._key: bytes | None = None
        self._wrapped: str | None = None
        self._lock = threading.Lock()
        self.kms_calls = 0

    def seal(self, payload_json: str) -> str:
        """The row's JSON text for ``payload_json``. Raises EnvelopeError (the snapshot is
        dropped; the next one asks KMS again)."""
        key, wrapped = self._data_key()
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(key).encrypt(nonce, payload_json.encode("utf-8"), self._aad)
        return json.dumps({ENVELOPE_KEY: {
            "v": FORMAT, "alg": ALGORITHM, "kms_key": self._kms.key_name, "wrapped_key": wrapped,
            "nonce": _b64(nonce), "ciphertext": _b64(ciphertext)}}, separators=(",", ":"))

    def open(self, payload: Any) -> dict[str, Any]:
        """The stored payload in the clear. Raises EnvelopeError; the data key it unwrapped is
        kept for this call's own snapshots."""
        sealed = payload.get(ENVELOPE_KEY) if isinstance(payload, dict) else None
        if not isinstance(sealed, dict):
            raise EnvelopeError(NOT_ENCRYPTED, "the stored checkpoint is not encrypted")
        if sealed.get("v") != FORMAT or sealed.get("alg") != ALGORITHM:
            raise EnvelopeError(MALFORMED, f"envelope format {sealed.get('v')!r}/{sealed.get('alg')!r}")
        if sealed.get("kms_key") != self._kms.key_name:
            raise EnvelopeError(OTHER_KEY, "the row's data key is wrapped by another KMS key")
        wrapped = sealed.get("wrapped_key")
        nonce, ciphertext = _unb64(sealed.get("nonce")), _unb64(sealed.get("ciphertext"))
        if not isinstance(wrapped, str) or len(nonce) != NONCE_BYTES:
            raise EnvelopeError(MALFORMED, "envelope without a wrapped key or a 96-bit nonce")
        with self._lock:
            self.kms_calls += 1
            key = self._kms.decrypt(wrapped, self._aad)
            if len(key) != 32:
                raise EnvelopeError(MALFORMED, f"unwrapped data key of {len(key)} bytes")
            try:
                plaintext = AESGCM(key).decrypt(nonce, ciphertext, self._aad)
            except InvalidTag as exc:
                raise EnvelopeError(TAMPERED, "the checkpoint does not authenticate for this call") from exc
            self._key, self._wrapped = key, wrapped
        try:
            opened = json.loads(plaintext)
        except ValueError as exc:
            raise EnvelopeError(MALFORMED, "decrypted checkpoint is not JSON") from exc
        if not isinstance(opened, dict):
            raise EnvelopeError(MALFORMED, "decrypted checkpoint is not an object")
        return opened

    def _data_key(self) -> tuple[bytes, str]:
        with self._lock:
            if self._key is None or self._wrapped is None:
                key = AESGCM.generate_key(bit_length=256)
                self.kms_calls += 1
                wrapped = self._kms.encrypt(key, self._aad)
                self._key, self._wrapped = key, wrapped
            return self._key, self._wrapped


class PlaintextEnvelope:
    """AGENT_RECOVERY_KMS_KEY=none: rows in the clear (outside GCP only); never opens a sealed row."""

    kms_calls = 0

    def seal(self, payload_json: str) -> str:
        return payload_json

    def open(self, payload: Any) -> dict[str, Any]:
        if isinstance(payload, dict) and ENVELOPE_KEY in payload:
            raise EnvelopeError(ENCRYPTED, "the stored checkpoint is encrypted and this job has no KMS key")
        if not isinstance(payload, dict):
            raise EnvelopeError(MALFORMED, "the stored checkpoint is not an object")
        return payload


_clients: dict[tuple[str, str], KmsClient] = {}
_clients_lock = threading.Lock()


def for_call(kms_key: str, kms_endpoint: str, *, room: str, room_sid: str) -> CallEnvelope | PlaintextEnvelope:
    """The envelope of one call; the KMS client (credentials, HTTP connections) is per process."""
    if not kms_key:
        return PlaintextEnvelope()
    with _clients_lock:
        client = _clients.get((kms_key, kms_endpoint))
        if client is None:
            client = _clients[(kms_key, kms_endpoint)] = KmsClient(kms_key, kms_endpoint)
    return CallEnvelope(client, room=room, room_sid=room_sid)
