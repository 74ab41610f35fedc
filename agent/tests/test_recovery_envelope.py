"""Checkpoints sealed with a per-call data key wrapped by Cloud KMS (recovery/envelope.py).

Cloud KMS is imitated at its network boundary by helpers/kms_server.py (REST v1 encrypt and
decrypt as documented, with a real AES-GCM key per crypto key, so AAD is really checked, and
Google's error shapes); the agent reaches it with google-auth's Application Default Credentials
through AGENT_RECOVERY_KMS_ENDPOINT. The database is a real PostgreSQL (helpers/postgres.py).

The mechanism's own failure modes come first: KMS down or denying must never cost the call
anything but its snapshot, and a resume that cannot open its row starts fresh."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Iterator

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from helpers.kms_server import KmsServer
from helpers.postgres import PostgresServer, start_postgres
from voice_agent.recovery import envelope, store
from voice_agent.recovery.checkpoints import CheckpointWriter
from voice_agent.recovery.config import RecoverySettings
from voice_agent.recovery.payload import PAYLOAD_VERSION, Checkpoint, read_payload
from voice_agent.recovery.resume import CallRecovery
from voice_agent.recovery.telemetry import RecoveryLogCounter, create_recovery_metrics

KEY = "projects/gva-fixture-dev/locations/europe-west1/keyRings/voice-agent/cryptoKeys/checkpoints"
SID = "RM_call1"
CALLER = store.caller_hash(SID, "caller-1")
SECRET = "my card number is 4111 1111 1111 1111"
CONVERSATION = {"items": [
    {"id": "m1", "type": "message", "role": "user", "content": [SECRET]},
    {"id": "c1", "type": "function_call", "call_id": "c1", "name": "lookup", "arguments": '{"card": "4111"}'},
]}


@pytest.fixture
def kms(tmp_path, monkeypatch) -> Iterator[KmsServer]:
    with KmsServer() as server:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", server.credentials_file(tmp_path))
        monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud user credentials
        yield server


def sealer(kms: KmsServer, room: str = "r", room_sid: str = SID, key: str = KEY) -> envelope.CallEnvelope:
    return envelope.CallEnvelope(envelope.KmsClient(key, kms.endpoint, timeout=2.0), room=room, room_sid=room_sid)


# ---------------------------------------------------------------- the envelope itself
def test_a_call_asks_kms_once_and_its_resume_unwraps_once(kms):
    first = sealer(kms)
    rows = [first.seal(json.dumps({"chat_ctx": CONVERSATION, "turns": n})) for n in range(5)]
    assert kms.requests["encrypt"] == 1 and first.kms_calls == 1
    assert kms.tokens_seen, "KMS was called with the identity's bearer token"
    resumer = sealer(kms)
    assert resumer.open(json.loads(rows[-1]))["turns"] == 4
    assert kms.requests["decrypt"] == 1
    # the resumed call goes on with the unwrapped key: no second KMS call for its snapshots
    resumer.seal(json.dumps({"chat_ctx": CONVERSATION, "turns": 5}))
    assert kms.requests["encrypt"] == 1 and kms.requests["decrypt"] == 1


def test_a_sealed_row_holds_no_plaintext(kms):
    text = sealer(kms).seal(json.dumps({"chat_ctx": CONVERSATION}))
    assert "4111" not in text and "card" not in text and "lookup" not in text
    sealed = json.loads(text)[envelope.ENVELOPE_KEY]
    assert set(sealed) == {"v", "alg", "kms_key", "wrapped_key", "nonce", "ciphertext"}
    assert len(base64.b64decode(sealed["nonce"])) == envelope.NONCE_BYTES


@pytest.mark.parametrize(("room", "room_sid"), [("r", "RM_other"), ("r2", SID), ("r", "")])
def test_a_row_does_not_open_as_another_call(kms, room, room_sid):
    """AAD binds both the wrapped key (KMS refuses to unwrap: 400 INVALID_ARGUMENT) and the
    ciphertext to the room name and the room's SID."""
    row = json.loads(sealer(kms).seal(json.dumps({"chat_ctx": CONVERSATION})))
    with pytest.raises(envelope.EnvelopeError, match="kms_denied: KMS decrypt answered 400 INVALID_ARGUMENT") as err:
        sealer(kms, room=room, room_sid=room_sid).open(row)
    assert err.value.reason == envelope.KMS_DENIED


def test_a_ciphertext_moved_under_another_calls_key_does_not_authenticate(kms):
    """Even with a key KMS does unwrap for this call, another call's ciphertext (or an altered
    one) fails AES-GCM's tag check."""
    mine = json.loads(sealer(kms).seal(json.dumps({"chat_ctx": {"items": []}})))
    theirs = json.loads(sealer(kms, room="r2").seal(json.dumps({"chat_ctx": CONVERSATION})))
    mine[envelope.ENVELOPE_KEY]["ciphertext"] = theirs[envelope.ENVELOPE_KEY]["ciphertext"]
    with pytest.raises(envelope.EnvelopeError, match="tampered: the checkpoint does not authenticate"):
        sealer(kms).open(mine)
    flipped = json.loads(sealer(kms).seal(json.dumps({"chat_ctx": CONVERSATION})))
    blob = bytearray(base64.b64decode(flipped[envelope.ENVELOPE_KEY]["ciphertext"]))
    blob[0] ^= 1
    flipped[envelope.ENVELOPE_KEY]["ciphertext"] = base64.b64encode(bytes(blob)).decode()
    with pytest.raises(envelope.EnvelopeError, match="tampered"):
        sealer(kms).open(flipped)


@pytest.mark.parametrize(("nonce_bytes", "ok"), [(11, False), (12, True), (13, False)])
def test_the_nonce_must_be_96_bits(kms, nonce_bytes, ok):
    row = json.loads(sealer(kms).seal(json.dumps({"chat_ctx": CONVERSATION})))
    nonce = base64.b64decode(row[envelope.ENVELOPE_KEY]["nonce"])
    row[envelope.ENVELOPE_KEY]["nonce"] = base64.b64encode((nonce + b"\0")[:nonce_bytes]).decode()
    if ok:
        assert sealer(kms).open(row)["chat_ctx"] == CONVERSATION
    else:
        with pytest.raises(envelope.EnvelopeError, match="malformed: envelope without a wrapped key or a 96-bit nonce"):
            sealer(kms).open(row)


def test_rows_of_the_wrong_kind_are_refused_clearly(kms):
    with pytest.raises(envelope.EnvelopeError, match="not_encrypted"):
        sealer(kms).open({"chat_ctx": CONVERSATION, "v": PAYLOAD_VERSION})
    row = json.loads(sealer(kms).seal(json.dumps({"chat_ctx": CONVERSATION})))
    with pytest.raises(envelope.EnvelopeError, match="other_key: the row's data key is wrapped by another KMS key"):
        sealer(kms, key=KEY + "-2").open(row)
    with pytest.raises(envelope.EnvelopeError, match="encrypted: the stored checkpoint is encrypted and this job has no KMS key"):
        envelope.PlaintextEnvelope().open(row)
    with pytest.raises(envelope.EnvelopeError, match="malformed: envelope format 2"):
        sealer(kms).open({envelope.ENVELOPE_KEY: {**row[envelope.ENVELOPE_KEY], "v": 2}})


@pytest.mark.parametrize(("fault", "reason", "message"), [
    ("deny", envelope.KMS_DENIED, "KMS encrypt answered 403 PERMISSION_DENIED"),
    ("unavailable", envelope.KMS_UNREACHABLE, "KMS encrypt answered 503"),
])
def test_kms_faults_are_typed(kms, fault, reason, message):
    setattr(kms, fault, True)
    with pytest.raises(envelope.EnvelopeError, match=message) as err:
        sealer(kms).seal("{}")
    assert err.value.reason == reason


def test_no_google_credentials_is_denied(kms, tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(envelope.EnvelopeError, match="kms_denied: no Google credentials for KMS") as err:
        sealer(kms).seal("{}")
    assert err.value.reason == envelope.KMS_DENIED and not kms.requests


def test_kms_gone_is_unreachable(kms):
    client = envelope.KmsClient(KEY, "http://127.0.0.1:9", timeout=2.0)  # discard port: refused
    with pytest.raises(envelope.EnvelopeError, match="kms_unreachable: ConnectionError") as err:
        envelope.CallEnvelope(client, room="r", room_sid=SID).seal("{}")
    assert err.value.reason == envelope.KMS_UNREACHABLE


def test_a_failed_wrap_is_retried_by_the_next_snapshot(kms):
    call = sealer(kms)
    kms.unavailable = True
    with pytest.raises(envelope.EnvelopeError):
        call.seal("{}")
    kms.unavailable = False
    assert sealer(kms).open(json.loads(call.seal('{"turns": 1}'))) == {"turns": 1}


# ---------------------------------------------------------------- with the writer and PostgreSQL
@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.destroy()


async def fresh(pg: PostgresServer) -> asyncpg.Connection:
    conn = await asyncpg.connect(pg.dsn)
    await conn.execute(f"DROP TABLE IF EXISTS {store.TABLE}")
    await store.migrate(conn)
    return conn


def settings_for(pg: PostgresServer, kms: KmsServer) -> RecoverySettings:
    return RecoverySettings(dsn=pg.dsn, lease_seconds=1.5, db_timeout_seconds=1, kms_key=KEY,
                            kms_endpoint=kms.endpoint)


def writer_for(settings: RecoverySettings, job: str, room: str = "r", room_sid: str = SID) -> CheckpointWriter:
    return CheckpointWriter(settings, room=room, job_id=job, agent_identity=f"agent-{job}", agent_name="",
                            room_sid=room_sid, callers=(CALLER,))


async def until(predicate, tries: int = 60) -> None:
    for _ in range(tries):
        if await predicate():
            return
        await asyncio.sleep(0.05)


async def write_and_expire(conn, settings: RecoverySettings, room: str = "r") -> None:
    writer = writer_for(settings, "dead", room=room)
    writer.start()
    writer.submit(Checkpoint(chat_ctx=CONVERSATION, turns=1))

    async def written() -> bool:
        return writer.writes > 0
    await until(written)
    assert writer.writes == 1
    await writer.finish(ended_normally=False)  # the agent died: the row stays
    await conn.execute(f"UPDATE {store.TABLE} SET lease_until = now() - interval '1 second'")


def test_the_stored_row_holds_no_plaintext_and_resumes_as_the_same_call(pg, kms):
    settings = settings_for(pg, kms)

    async def scenario():
        conn = await fresh(pg)
        await write_and_expire(conn, settings)
        raw = await conn.fetchval(f"SELECT payload::text FROM {store.TABLE}")
        replacement = writer_for(settings, "next")
        stored = await replacement.take_over(None)
        await replacement.finish(ended_normally=True)
        await conn.close()
        return raw, stored

    raw, stored = run(scenario())
    assert "4111" not in raw and "lookup" not in raw and envelope.ENVELOPE_KEY in raw
    assert stored is not None and read_payload(stored.payload_version, stored.payload).chat_ctx == CONVERSATION
    assert kms.requests["encrypt"] == 1 and kms.requests["decrypt"] == 1


def test_a_row_copied_to_another_call_starts_that_call_fresh(pg, kms, caplog):
    settings = settings_for(pg, kms)

    async def scenario():
        conn = await fresh(pg)
        await write_and_expire(conn, settings)
        await conn.execute(f"""INSERT INTO {store.TABLE} (room, job_id, payload_version, payload, lease_until,
                                 room_sid, callers)
                               SELECT 'r2', 'dead2', payload_version, payload, lease_until, room_sid, callers
                               FROM {store.TABLE} WHERE room = 'r'""")
        other = writer_for(settings, "other", room="r2")
        stored = await other.take_over(None)
        holder = await store.lease_holder(conn, room="r2")
        await other.finish(ended_normally=True)
        await conn.close()
        return stored, holder

    stored, holder = run(scenario())
    assert stored is None and holder[0] == "other"
    lines = [r for r in caplog.records if getattr(r, "event", "") == "checkpoint_unreadable"]
    assert len(lines) == 1 and lines[0].reason == envelope.KMS_DENIED


def run(coro):
    return asyncio.run(coro)


def test_kms_down_drops_the_snapshot_counts_it_and_never_costs_the_call(pg, kms):
    """KMS down at the call's start: each snapshot is dropped with checkpoint_dropped
    reason=kms_unreachable (counted), nothing is stored in the clear instead, the writer never
    raises into the session; when KMS is back the next snapshot is stored sealed, and the lease
    then lives for more than three leases with no further KMS call."""
    settings = settings_for(pg, kms)
    registry = CollectorRegistry()
    counter = RecoveryLogCounter(create_recovery_metrics(registry))
    logging.getLogger().addHandler(counter)

    async def scenario():
        conn = await fresh(pg)
        kms.unavailable = True
        writer = writer_for(settings, "live")
        writer.start()
        for turn in range(3):
            writer.submit(Checkpoint(chat_ctx=CONVERSATION, turns=turn))

            async def dropped(turn=turn) -> bool:
                return writer.dropped > turn
            await until(dropped)
        rows_while_down = await conn.fetchval(f"SELECT count(*) FROM {store.TABLE}")
        kms.unavailable = False
        writer.submit(Checkpoint(chat_ctx=CONVERSATION, turns=3))

        async def written() -> bool:
            return writer.writes > 0
        await until(written)
        lowest_left = 99.0
        for _ in range(int(3.5 * 1.5 / 0.1)):  # more than three leases
            holder = await store.lease_holder(conn, room="r")
            lowest_left = min(lowest_left, holder[1] if holder and holder[0] == "live" else -1.0)
            await asyncio.sleep(0.1)
        kms.unavailable = True  # the key is cached: later snapshots need no KMS
        writer.submit(Checkpoint(chat_ctx=CONVERSATION, turns=4))

        async def rewritten() -> bool:
            return writer.writes > 1
        await until(rewritten)
        raw = await conn.fetchval(f"SELECT payload::text FROM {store.TABLE}")
        state = (writer.dropped, writer.writes, writer.renewals, writer.fenced)
        await writer.finish(ended_normally=False)
        await conn.close()
        return rows_while_down, lowest_left, raw, state

    try:
        rows_while_down, lowest_left, raw, (dropped, writes, renewals, fenced) = run(scenario())
    finally:
        logging.getLogger().removeHandler(counter)
    assert rows_while_down == 0, "nothing is stored in the clear while KMS is down"
    assert dropped == 3 and writes == 2 and renewals >= 3 and not fenced
    assert lowest_left > 0, "the lease ran out while the job was alive"
    assert registry.get_sample_value("voice_agent_checkpoints_dropped_total", {"reason": "kms_unreachable"}) == 3
    assert "4111" not in raw
    assert kms.requests["encrypt"] == 3 + 1  # three failed wraps, one that worked, then none


def test_a_resume_that_kms_denies_starts_fresh_and_owns_the_row(pg, kms, caplog):
    settings = settings_for(pg, kms)

    async def scenario():
        conn = await fresh(pg)
        await write_and_expire(conn, settings)
        kms.deny = True
        writer = writer_for(settings, "next")
        recovery = CallRecovery(settings, writer, room="r", job_id="next", room_sid=SID)
        await recovery.take_over(None)
        holder = await store.lease_holder(conn, room="r")
        await writer.finish(ended_normally=True)
        await conn.close()
        return recovery, holder

    recovery, holder = run(scenario())
    assert recovery.resumed is None and not recovery.superseded
    assert holder[0] == "next", "the fresh call owns the row (its snapshots replace the old one)"
    lines = [r for r in caplog.records if getattr(r, "event", "") == "checkpoint_unreadable"]
    assert len(lines) == 1 and lines[0].reason == envelope.KMS_DENIED and "4111" not in lines[0].getMessage()
