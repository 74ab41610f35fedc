"""The verifier's readiness answer in-process (places_mcp/caller_auth.py ready()): a boolean,
False while the issuer's key set cannot be fetched, True once it has been. The issuer is
imitated at the HTTP boundary (httpx2.MockTransport) the way Kubernetes' OIDC discovery answers
(KEP-1393: `<issuer>/.well-known/openid-configuration` -> `jwks_uri` -> {"keys": [...]})."""

from __future__ import annotations

import asyncio

import httpx2

from places_mcp.caller_auth import ProjectedTokenVerifier

ISSUER = "https://issuer.test"
# an RSA public key in JWK form (RFC 7517 appendix A.1's example modulus and exponent)
JWK = {"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "e": "AQAB",
       "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMs"
            "tn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n9"
            "1CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}


def _verifier(handler) -> ProjectedTokenVerifier:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return ProjectedTokenVerifier(http, issuer=ISSUER, audience="places-mcp", allowed_subjects=("s",), refresh_seconds=0)


def test_not_ready_is_false_while_the_issuer_is_down():
    verifier = _verifier(lambda request: httpx2.Response(503))
    assert asyncio.run(verifier.ready()) is False


def test_ready_once_the_key_set_is_fetched():
    def issuer(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/.well-known/openid-configuration":
            return httpx2.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"})
        return httpx2.Response(200, json={"keys": [JWK]})

    assert asyncio.run(_verifier(issuer).ready()) is True


def test_a_key_set_without_signing_keys_is_not_ready():
    verifier = _verifier(lambda request: httpx2.Response(200, json={"keys": [{**JWK, "use": "enc"}], "jwks_uri": "x"}))
    assert asyncio.run(verifier.ready()) is False
