"""Bearer JWTs from a configured issuer: a PEM public key, a JWKS URL, or a shared secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from flowboard.app import create_app
from flowboard.config import Settings
from tests.servers.app import AppClient, MakeSettings

API = "/api/creative-flowboard"
ISSUER, AUDIENCE = "https://id.example.test/", "flowboard"
SECRET = "a-shared-secret-of-at-least-32-bytes!"
MakeClient = Callable[..., Any]


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> str:
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public.decode()


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "org_id": "jwt-org",
        "iat": now, "exp": now + 300,
    }  # fmt: skip
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _forge_hs256(claims: dict[str, Any], key: bytes) -> str:
    """An HS256 token keyed with the public key (PyJWT refuses to make one)."""

    def part(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signed = f"{header}.{part(json.dumps(claims).encode())}"
    return f"{signed}.{part(hmac.new(key, signed.encode(), hashlib.sha256).digest())}"


def _auth(pem: str = "", jwks: str = "", secret: str = "") -> dict[str, Any]:
    return {
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
        "jwt_public_key": pem,
        "jwt_jwks_url": jwks,
        "jwt_secret": secret,
        "jwt_leeway_seconds": 0,
    }


async def _anonymous(aiohttp_client: MakeClient, settings: Settings) -> AppClient:
    owner: AppClient = await aiohttp_client(create_app(settings))
    anonymous: AppClient = await aiohttp_client(owner.server, org=None, borrowed=True)
    return anonymous


async def _status(client: AppClient, token: str) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    resp = await client.post(f"{API}/flows", json={"name": "by jwt"}, headers=headers)
    body: dict[str, Any] = await resp.json()
    return resp.status, body


async def test_pem_key_jwt_acts_for_its_org_claim(
    aiohttp_client: MakeClient, make_settings: MakeSettings, private_key: rsa.RSAPrivateKey
) -> None:
    client = await _anonymous(aiohttp_client, make_settings(auth=_auth(pem=_pem(private_key))))
    status, flow = await _status(client, jwt.encode(_claims(), private_key, "RS256"))
    assert status == 201 and flow["orgId"] == "jwt-org"
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    refused = {
        "expired": jwt.encode(_claims(exp=now - 10), private_key, "RS256"),
        "issuer": jwt.encode(_claims(iss="https://evil.test/"), private_key, "RS256"),
        "audience": jwt.encode(_claims(aud="someone-else"), private_key, "RS256"),
        "no org": jwt.encode(_claims(org_id=None), private_key, "RS256"),
        "no exp": jwt.encode(_claims(exp=None), private_key, "RS256"),
        "bad org": jwt.encode(_claims(org_id="../x y"), private_key, "RS256"),
        "other key": jwt.encode(_claims(), stranger, "RS256"),
        "hs with the public key": _forge_hs256(_claims(), _pem(private_key).encode()),
        "alg none": jwt.encode(_claims(), "", "none"),
        "garbage": "a.b.c",
    }
    for label, token in refused.items():
        status, body = await _status(client, token)
        assert status == 401, (label, body)
        assert token not in json.dumps(body)
    status, body = await _status(client, refused["expired"])
    assert body["error"]["message"] == "token expired"


async def test_shared_secret_jwt(aiohttp_client: MakeClient, make_settings: MakeSettings) -> None:
    client = await _anonymous(aiohttp_client, make_settings(auth=_auth(secret=SECRET)))
    status, flow = await _status(client, jwt.encode(_claims(org_id="hs-org"), SECRET, "HS256"))
    assert status == 201 and flow["orgId"] == "hs-org"
    forged = jwt.encode(_claims(), "another-secret-32-bytes-long!!!!", "HS256")
    assert (await _status(client, forged))[0] == 401


async def test_jwks_url_jwt(
    aiohttp_client: MakeClient, make_settings: MakeSettings, private_key: rsa.RSAPrivateKey
) -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key()))
    jwk |= {"kid": "k1", "use": "sig", "alg": "RS256"}

    async def keys(request: web.Request) -> web.Response:
        return web.json_response({"keys": [jwk]})

    issuer = web.Application()
    issuer.router.add_get("/.well-known/jwks.json", keys)
    server = TestServer(issuer)
    await server.start_server()
    try:
        url = str(server.make_url("/.well-known/jwks.json"))
        client = await _anonymous(aiohttp_client, make_settings(auth=_auth(jwks=url)))
        token = jwt.encode(_claims(), private_key, "RS256", headers={"kid": "k1"})
        status, flow = await _status(client, token)
        assert status == 201 and flow["orgId"] == "jwt-org"
        unknown = jwt.encode(_claims(), private_key, "RS256", headers={"kid": "k2"})
        assert (await _status(client, unknown))[0] == 401
    finally:
        await server.close()
