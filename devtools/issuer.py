"""``make dev``'s stand-in for Amazon Cognito: an RSA key, its JWKS, and ID tokens.

    make token EMAIL=ann@example.com                   # an attendee
    make token EMAIL=org@example.com ROLE=organiser    # in the organisers group
    make token EMAIL=ann@example.com EXPIRES_IN=-60    # already expired, for testing

The tokens have the shape of Cognito's ID tokens (``token_use: id``,
``email_verified``, ``cognito:groups``), so the service checks them with the
same code as in AWS. The key and the JWKS live in ``.local/`` (git-ignored) and
are made on first use; ``make dev`` points the service at that JWKS. A token's
``sub`` is derived from its email, so an organiser stays the owner of their
events across tokens.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from chalicelib.identity.tokens import (
    ALGORITHM,
    AUDIENCE_ENV,
    ISSUER_ENV,
    JWKS_URL_ENV,
    ORGANISERS_GROUP,
)
from devtools.dynamodb_local import ROOT

ISSUER = "https://issuer.ticket-booking.invalid/local"
AUDIENCE = "ticket-booking-local"
DEFAULT_DIRECTORY = ROOT / ".local"
_SUBJECTS = uuid.UUID("6f1c2a52-0d8e-4a3c-9a51-7b5d1e0f3c11")


class LocalIssuer:
    """Signs ID tokens with a key kept in ``directory``; publishes its JWKS next to it."""

    def __init__(self, directory: Path = DEFAULT_DIRECTORY) -> None:
        self.key_path = directory / "jwt-signing-key.pem"
        self.jwks_path = directory / "jwks.json"
        self._ensure()
        self._signing_key: Any = None  # loaded once: parsing an RSA key costs milliseconds

    @property
    def environment(self) -> dict[str, str]:
        """What the service needs to trust this issuer."""
        return {
            ISSUER_ENV: ISSUER,
            AUDIENCE_ENV: AUDIENCE,
            JWKS_URL_ENV: self.jwks_path.resolve().as_uri(),
        }

    @property
    def kid(self) -> str:
        return str(json.loads(self.jwks_path.read_text())["keys"][0]["kid"])

    def token(
        self,
        email: str,
        organiser: bool = False,
        expires_in: int = 3600,
        claims: dict[str, Any] | None = None,
    ) -> str:
        """An ID token for ``email``; ``claims`` replace claims, or (as None) remove them."""
        import jwt

        now = int(time.time())
        subject = self.subject(email)
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": subject,
            "cognito:username": subject,
            "email": email,
            "email_verified": True,
            "token_use": "id",
            "auth_time": now,
            "iat": now if expires_in > 0 else now + expires_in - 60,
            "exp": now + expires_in,
        }
        if organiser:
            payload["cognito:groups"] = [ORGANISERS_GROUP]
        for name, value in (claims or {}).items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        return jwt.encode(payload, self._key(), algorithm=ALGORITHM, headers={"kid": self.kid})

    def _key(self) -> Any:
        if self._signing_key is None:
            from cryptography.hazmat.primitives import serialization

            pem = self.key_path.read_bytes()
            self._signing_key = serialization.load_pem_private_key(pem, password=None)
        return self._signing_key

    @staticmethod
    def subject(email: str) -> str:
        """The ``sub`` this issuer gives ``email`` (stable, as Cognito's is per user)."""
        return str(uuid.uuid5(_SUBJECTS, email.strip().lower()))

    def _ensure(self) -> None:
        if self.key_path.exists() and self.jwks_path.exists():
            return
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from jwt.algorithms import RSAAlgorithm

        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_path.parent.mkdir(parents=True, exist_ok=True)
        self.key_path.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.key_path.chmod(0o600)
        jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
        jwk.update({"kid": uuid.uuid4().hex, "alg": ALGORITHM, "use": "sig"})
        self.jwks_path.write_text(json.dumps({"keys": [jwk]}, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print a bearer token that make dev accepts.")
    parser.add_argument("--email", required=True, help="the signed-in person's email")
    parser.add_argument("--role", choices=["attendee", "organiser"], default="attendee")
    parser.add_argument(
        "--expires-in", type=int, default=3600, help="seconds; negative: already expired"
    )
    args = parser.parse_args(argv)
    if not args.email.strip():
        parser.error("EMAIL is required: make token EMAIL=you@example.com")
    issuer = LocalIssuer()
    print(issuer.token(args.email, args.role == "organiser", args.expires_in))
    return 0


if __name__ == "__main__":
    sys.exit(main())
