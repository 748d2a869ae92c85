"""Verify a bearer token: an Amazon Cognito ID token, or one from ``make dev``'s own issuer.

The service checks tokens itself, on every protected route, in AWS and locally
alike: ``chalice local`` does not enforce Cognito authorizers (it admits a
request with no token at all), so an API Gateway authorizer would leave the
local and test paths unchecked.

What a token must be, in order (each refusal is a 401 saying which):

* a JWT whose header names ``RS256`` and a ``kid`` of the issuer's JWKS
  (``alg: none``, HMAC, and HMAC keyed with the public key are all refused: the
  only algorithm accepted is RS256, with the JWKS's RSA key);
* signed by that key; issued by ``JWT_ISSUER`` for ``JWT_AUDIENCE`` (Cognito's
  app client id); not expired, not issued in the future, not before its
  ``nbf`` (30 s of clock skew allowed);
* an ID token (``token_use: id``: access tokens carry no email) whose
  ``email_verified`` is true, with an ``email`` and a ``sub``.

The JWKS is fetched once per container and again (at most once a minute) when
a token names a key it does not hold, which is how key rotation looks.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import ServiceBusy, Unauthenticated

ISSUER_ENV = "JWT_ISSUER"
AUDIENCE_ENV = "JWT_AUDIENCE"
JWKS_URL_ENV = "JWKS_URL"
ORGANISERS_GROUP = "organisers"
ALGORITHM = "RS256"
CLOCK_SKEW_SECONDS = 30
JWKS_REFRESH_SECONDS = 60
JWKS_TIMEOUT_SECONDS = 3
#: A Cognito ID token is about 1 KB; anything far larger is not one.
MAX_TOKEN_LENGTH = 8192


@dataclass(frozen=True)
class Claims:
    subject: str
    email: str
    groups: frozenset[str]

    @property
    def is_organiser(self) -> bool:
        return ORGANISERS_GROUP in self.groups


@dataclass(frozen=True)
class IssuerConfig:
    issuer: str
    audience: str
    jwks_url: str

    @classmethod
    def from_environment(cls) -> IssuerConfig:
        values = {name: os.environ.get(name) for name in (ISSUER_ENV, AUDIENCE_ENV, JWKS_URL_ENV)}
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise RuntimeError(f"token verification is not configured: {', '.join(missing)}")
        return cls(values[ISSUER_ENV], values[AUDIENCE_ENV], values[JWKS_URL_ENV])  # type: ignore[arg-type]


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if not authorization:
        raise Unauthenticated("sign in: send Authorization: Bearer <token>", invalid_token=False)
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("send the token as Authorization: Bearer <token>")
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise Unauthenticated("the token is malformed")
    return token


def verify(token: str, config: IssuerConfig) -> Claims:
    """The verified claims of ``token``, or ``Unauthenticated`` saying what is wrong."""
    import jwt  # lazily: only protected routes pay for PyJWT and cryptography

    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthenticated("the token is malformed") from None
    if header.get("alg") != ALGORITHM:
        raise Unauthenticated(f"the token must be signed with {ALGORITHM}")
    key = _jwks_cache.key(config.jwks_url, str(header.get("kid", "")))
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=config.audience,
            issuer=config.issuer,
            leeway=CLOCK_SKEW_SECONDS,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the token has expired") from None
    except jwt.ImmatureSignatureError:
        raise Unauthenticated("the token is not valid yet") from None
    except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
        raise Unauthenticated("the token was issued for another service") from None
    except jwt.PyJWTError:
        raise Unauthenticated("the token's signature or claims are invalid") from None
    return _identity(claims)


def _identity(claims: dict[str, Any]) -> Claims:
    if claims.get("token_use") != "id":
        raise Unauthenticated("send an ID token (it carries your verified email)")
    verified = claims.get("email_verified")
    if verified is not True and verified != "true":  # not 1: 1 == True in Python
        raise Unauthenticated("the token's email is not verified")
    email, subject = claims.get("email"), claims.get("sub")
    if not isinstance(email, str) or not email or not isinstance(subject, str) or not subject:
        raise Unauthenticated("the token names no email or subject")
    groups = claims.get("cognito:groups") or []
    if not isinstance(groups, list):
        raise Unauthenticated("the token's groups are malformed")
    return Claims(subject, email, frozenset(str(group) for group in groups))


class JwksCache:
    """The issuer's public keys by ``kid``, per JWKS URL, shared by the container's requests."""

    def __init__(self) -> None:
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def key(self, url: str, kid: str) -> Any:
        keys = self._keys.get(url)
        if keys is None or (kid not in keys and self._may_refresh(url)):
            keys = self._fetch(url)
        if kid not in keys:
            raise Unauthenticated("the token was signed by a key this service does not trust")
        return keys[kid]

    def _may_refresh(self, url: str) -> bool:
        return time.monotonic() - self._fetched_at.get(url, 0.0) >= JWKS_REFRESH_SECONDS

    def _fetch(self, url: str) -> dict[str, Any]:
        import jwt

        with self._lock:
            try:
                with urllib.request.urlopen(url, timeout=JWKS_TIMEOUT_SECONDS) as response:
                    document = json.loads(response.read())
                keys = {
                    str(jwk["kid"]): jwt.PyJWK(jwk, algorithm=ALGORITHM).key
                    for jwk in document["keys"]
                    if jwk.get("kty") == "RSA" and jwk.get("use", "sig") == "sig"
                }
            except Exception as error:  # the keys stay as they were; the caller may retry
                raise ServiceBusy(
                    f"the issuer's keys could not be read ({type(error).__name__})"
                ) from None
            self._keys[url] = keys
            self._fetched_at[url] = time.monotonic()
            return keys

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()
            self._fetched_at.clear()


_jwks_cache = JwksCache()


def forget_keys() -> None:
    """Drop cached keys (tests switch issuers)."""
    _jwks_cache.clear()
