"""Key values and key sets: loading, family mix-ups refused at construction, the JWKS."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest

from redis_jwt import Key, KeyRing, RedisJWT, Settings, errors

from .conftest import SECRET
from .keyfactory import private_jwk, private_key, private_pem, public_pem

HS512_SECRET = SECRET + SECRET  # 128 characters


@pytest.mark.parametrize(
    ("kind", "algorithm"),
    [
        ("rsa", "RS256"),
        ("p256", "ES256"),
        ("p384", "ES384"),
        ("p521", "ES512"),
        ("ed25519", "EdDSA"),
        ("ed448", "EdDSA"),
    ],
)
def test_from_pem_infers_the_algorithm_from_the_key(kind: str, algorithm: str) -> None:
    key = Key.from_pem("k1", private_pem(private_key(kind)))
    assert (key.kid, key.algorithm, key.can_sign, key.is_symmetric) == (
        "k1",
        algorithm,
        True,
        False,
    )
    public = Key.from_pem("k1", public_pem(private_key(kind)).decode())
    assert public.algorithm == algorithm
    assert not public.can_sign


def test_from_pem_takes_an_explicit_rsa_algorithm_and_an_encrypted_key() -> None:
    pem = private_pem(private_key("rsa"), password=b"hunter2-hunter2")
    key = Key.from_pem("ps", pem, "PS256", password=b"hunter2-hunter2")
    assert key.algorithm == "PS256"
    with pytest.raises(errors.ConfigurationError, match="cannot load the PEM"):
        Key.from_pem("ps", pem, "PS256")


def test_from_pem_reads_a_certificate_as_a_public_key() -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    signer = private_key("p256")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "redis-jwt test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(signer.public_key())  # type: ignore[arg-type]
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(signer, hashes.SHA256())  # type: ignore[arg-type]
    )
    from cryptography.hazmat.primitives.serialization import Encoding

    key = Key.from_pem("cert", cert.public_bytes(Encoding.PEM))
    assert key.algorithm == "ES256"
    assert not key.can_sign


def test_from_jwk_reads_private_and_public_jwks_and_json_text() -> None:
    key = Key.from_jwk(private_jwk("rsa", kid="r1", alg="RS256"))
    assert key.can_sign
    public = key.public_jwk()
    assert public is not None
    assert not {"d", "p", "q", "dp", "dq", "qi"} & public.keys()
    assert (public["kid"], public["alg"], public["use"]) == ("r1", "RS256", "sig")
    again = Key.from_jwk(json.dumps(public))
    assert again.public_jwk() == public
    assert not again.can_sign
    okp = Key.from_jwk(private_jwk("ed448", kid="o"))
    assert okp.algorithm == "EdDSA"
    secret = Key.from_jwk(
        {"kty": "oct", "kid": "h", "k": jwt.utils.base64url_encode(SECRET.encode()).decode()}
    )
    assert (secret.algorithm, secret.public_jwk(), secret.is_symmetric) == ("HS256", None, True)


def test_key_material_never_shows_in_repr() -> None:
    keys = [Key.hmac("h", SECRET), Key.from_pem("r", private_pem(private_key("rsa")))]
    text = repr(KeyRing(keys))
    assert SECRET not in text
    assert "PRIVATE" not in text
    assert "Key(kid='h', algorithm='HS256', hmac)" in text


def _rsa_public_pem() -> str:
    return public_pem(private_key("rsa")).decode()


@pytest.mark.parametrize(
    ("build", "advice"),
    [
        (lambda: RedisJWT(secret=_rsa_public_pem()), "Key.from_pem"),
        (lambda: Key.hmac("k", _rsa_public_pem()), "Key.from_pem"),
        (lambda: Key.hmac("k", json.dumps({"kty": "oct", "k": "x" * 64})), "Key.from_jwk"),
        (lambda: Key.hmac("k", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + "x" * 40), "Key.from"),
        (lambda: Key.hmac("k", SECRET, "RS256"), "Key.from_pem"),
        (lambda: RedisJWT(secret=SECRET, algorithm="RS256"), "keys="),
        (lambda: Key.hmac("k", "x" * 31), "at least 32 bytes"),
        (lambda: Key.hmac("k", SECRET[:50], "HS512"), "at least 64 bytes"),
        (lambda: Key.hmac("k", 42, "HS256"), "str or bytes"),  # type: ignore[arg-type]
        (lambda: Key.hmac("", SECRET), "kid must be"),
        (lambda: Key.hmac("k", SECRET, "none"), "never accepted"),
        (lambda: Key.from_pem("k", private_pem(private_key("rsa")), "HS256"), "shared secret"),
        (lambda: Key.from_pem("k", SECRET), "Key.hmac"),
        (lambda: Key.from_pem("k", "-----BEGIN PRIVATE KEY-----\nAAAA\n"), "cannot load"),
        (lambda: Key.from_pem("k", private_pem(private_key("p384")), "ES256"), "ES384"),
        (lambda: Key.from_pem("k", private_pem(private_key("p256")), "RS256"), "ES256"),
        (lambda: Key.from_pem("k", private_pem(private_key("ed25519")), "ES256"), "EdDSA"),
        (lambda: Key.from_pem("k", private_pem(private_key("rsa")), "ES256"), "PS256"),
        (lambda: Key.from_pem("k", private_pem(private_key("dsa"))), "DSAPrivateKey"),
        (lambda: Key.from_pem("k", public_pem(private_key("dsa"))), "DSAPublicKey"),
        (lambda: Key.from_pem("k", private_pem(private_key("secp256k1"))), "P-256"),
        (lambda: Key.from_pem("k", private_pem(private_key("rsa1024"))), "2048"),
        (lambda: Key.from_jwk("{not json"), "not valid JSON"),
        (lambda: Key.from_jwk("[]"), "JSON object"),
        (lambda: Key.from_jwk({"kty": "oct", "k": "eA"}), "kid must be"),
        (lambda: Key.from_jwk({"kty": "RSA", "kid": "e", "use": "enc"}), "only 'sig'"),
        (lambda: Key.from_jwk({"kty": "XYZ", "kid": "x"}), "supported: oct"),
        (lambda: Key.from_jwk({"kty": "oct", "kid": "x", "alg": "RS256", "k": "eA"}), "HMAC"),
        (lambda: Key.from_jwk({"kty": "oct", "kid": "x"}), "base64url"),
        (lambda: Key.from_jwk({"kty": "RSA", "kid": "x", "alg": "HS256"}), "asymmetric"),
        (lambda: Key.from_jwk({"kty": "RSA", "kid": "x", "n": "AQAB"}), "cannot load the JWK"),
    ],
)
def test_key_family_mix_ups_are_refused_with_advice(build: object, advice: str) -> None:
    with pytest.raises(errors.ConfigurationError, match=advice):
        build()  # type: ignore[operator]


def test_key_sets_refuse_ambiguity_and_public_signers() -> None:
    hmac = Key.hmac("h", SECRET)
    public = Key.from_pem("pub", public_pem(private_key("p256")))
    with pytest.raises(errors.ConfigurationError, match="at least one"):
        KeyRing([])
    with pytest.raises(errors.ConfigurationError, match="share kid"):
        KeyRing([hmac, Key.hmac("h", SECRET)])
    with pytest.raises(errors.ConfigurationError, match="cannot sign"):
        KeyRing([public, hmac])
    with pytest.raises(errors.ConfigurationError, match="names no key"):
        KeyRing([hmac], signing="nope")
    with pytest.raises(errors.ConfigurationError, match="Key values"):
        KeyRing(["h"])  # type: ignore[list-item]
    assert KeyRing([public, hmac], signing="h").signing_kid == "h"
    verifier = KeyRing([public], verify_only=True)
    assert verifier.signing is None
    with pytest.raises(errors.ConfigurationError, match="only verifies"):
        _ = verifier.signing_key
    with pytest.raises(errors.ConfigurationError, match="cannot sign"):
        _ = public.signing_key


@pytest.mark.parametrize("value", ["a-secret-string", b"bytes", 42])
def test_keys_argument_refuses_secrets_and_junk(value: object) -> None:
    with pytest.raises(errors.ConfigurationError, match="keys="):
        RedisJWT(keys=value)  # type: ignore[arg-type]


def test_keys_accepts_a_single_key() -> None:
    auth = RedisJWT(keys=Key.hmac("only", SECRET))
    assert (auth.keys.signing_kid, auth.keys.signing_algorithm) == ("only", "HS256")


def test_secret_and_keys_are_exclusive() -> None:
    with pytest.raises(errors.ConfigurationError, match="exactly one"):
        RedisJWT(secret=SECRET, keys=[Key.hmac("h", SECRET)])
    with pytest.raises(errors.ConfigurationError, match="str or bytes"):
        KeyRing.from_secret(None)


def test_jwks_holds_public_parts_only_and_never_hmac_keys() -> None:
    ring = KeyRing(
        [
            Key.from_pem("es", private_pem(private_key("p256"))),
            Key.hmac("hs", SECRET),
            Key.from_pem("rs", private_pem(private_key("rsa")), "PS256"),
            Key.from_pem("ed", private_pem(private_key("ed25519"))),
        ]
    )
    auth = RedisJWT(keys=ring)
    document = auth.jwks()
    assert [k["kid"] for k in document["keys"]] == ["es", "rs", "ed"]
    text = json.dumps(document)
    assert SECRET not in text
    for jwk in document["keys"]:
        assert jwk["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & jwk.keys()
    assert RedisJWT(secret=SECRET).jwks() == {"keys": []}


def test_a_jwk_set_loads_from_a_dict_json_text_or_a_file(tmp_path: Path) -> None:
    es = Key.from_jwk(private_jwk("p256", kid="es"))
    document = {
        "keys": [
            {
                "kty": "oct",
                "kid": "hs",
                "k": jwt.utils.base64url_encode(HS512_SECRET.encode()).decode(),
                "alg": "HS512",
            },
            es.public_jwk(),
        ]
    }
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(document))
    for source in (document, json.dumps(document), str(path), path):
        ring = KeyRing.from_jwks(source)
        assert [k.kid for k in ring.keys] == ["hs", "es"]
        assert ring.signing_algorithm == "HS512"
    with pytest.raises(errors.ConfigurationError, match="cannot read"):
        KeyRing.from_jwks(tmp_path / "missing.json")
    with pytest.raises(errors.ConfigurationError, match="not valid JSON"):
        KeyRing.from_jwks("{oops")
    with pytest.raises(errors.ConfigurationError, match='"keys"'):
        KeyRing.from_jwks({"kty": "oct"})
    assert RedisJWT(keys=document).keys.signing_kid == "hs"


def test_settings_read_a_jwk_set_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = {"keys": [private_jwk("ed25519", kid="old"), private_jwk("ed25519", kid="new")]}
    monkeypatch.setenv("REDIS_JWT_KEYS", json.dumps(document))
    monkeypatch.setenv("REDIS_JWT_SIGNING_KID", "new")
    auth = RedisJWT.from_settings(Settings())
    assert auth.keys.signing_kid == "new"
    assert all("d" not in jwk for jwk in auth.jwks()["keys"])
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(document))
    monkeypatch.setenv("REDIS_JWT_KEYS", str(path))
    monkeypatch.delenv("REDIS_JWT_SIGNING_KID")
    assert RedisJWT.from_settings().keys.signing_kid == "old"
    monkeypatch.setenv("REDIS_JWT_SECRET", SECRET)
    with pytest.raises(errors.ConfigurationError, match="not both"):
        RedisJWT.from_settings()
