"""Throwaway asymmetric keys for the tests, generated with ``cryptography`` (never committed)."""

from __future__ import annotations

import functools
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm


@functools.cache
def private_key(kind: str) -> PrivateKeyTypes:
    """One key per kind for the whole run: ``rsa``, ``rsa1024``, ``p256``, ``p384``, ``p521``,
    ``secp256k1``, ``ed25519``, ``ed448``."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "rsa1024":
        # Deliberately weak: the tests check that it is refused.
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    if kind == "dsa":  # unsupported by JWT: the tests check that it is refused
        return dsa.generate_private_key(key_size=1024)  # noqa: S505
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "ed448":
        return ed448.Ed448PrivateKey.generate()
    curves: dict[str, ec.EllipticCurve] = {
        "p256": ec.SECP256R1(),
        "p384": ec.SECP384R1(),
        "p521": ec.SECP521R1(),
        "secp256k1": ec.SECP256K1(),
    }
    return ec.generate_private_key(curves[kind])


def fresh_private_key(kind: str) -> PrivateKeyTypes:
    """A new key of ``kind`` (not cached), for rotation tests."""
    return private_key.__wrapped__(kind)


def private_pem(key: PrivateKeyTypes, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM of a private key, encrypted with ``password`` when given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def public_pem(key: PrivateKeyTypes) -> bytes:
    """SubjectPublicKeyInfo PEM of the public half of ``key``."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_jwk(kind: str, **members: Any) -> dict[str, Any]:
    """The private JWK of ``private_key(kind)``, with extra ``members`` (``kid``, ``alg``)."""
    key: Any = private_key(kind)
    family: Any = (
        RSAAlgorithm
        if kind.startswith("rsa")
        else OKPAlgorithm
        if kind.startswith("ed")
        else ECAlgorithm
    )
    jwk: dict[str, Any] = json.loads(family.to_jwk(key))
    return {**jwk, **members}
