"""Cryptographic agility (密评, GB/T 39786): every hash and signature the hub writes names its
algorithm, and the algorithms are chosen by configuration, not by code.

Hashes: ``sha256`` and ``sm3`` (GB/T 32905), both through pyca/cryptography (OpenSSL).
Signatures: ``ed25519``, ``ecdsa-p256`` (ECDSA over P-256 with SHA-256), ``rsa-2048``/``rsa-3072``
(RSASSA-PKCS1-v1_5 with SHA-256) through pyca/cryptography, and ``sm2`` (GB/T 32918, SM2 with SM3
and the default distinguishing identifier ``1234567812345678`` of GB/T 35276) through gmssl_pyx,
the C extension over GmSSL. Keys are PEM (PKCS#8 private, SubjectPublicKeyInfo public) for every
algorithm, SM2 included, so `openssl pkey` reads them and `openssl pkeyutl`/`dgst -sm3` check our
outputs independently (tests/test_crypto.py does).

A key id is the sha256 of the public key's DER SubjectPublicKeyInfo whatever the algorithm: ids
already written stay valid, and an id names a key, not a digest the key makes.

Nothing here reads settings: callers pass the algorithm they were configured with, and record
it next to what they write, so switching the setting never breaks what was written before."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

from asn1crypto import keys as asn1_keys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

HashAlgorithm = Literal["sha256", "sm3"]
SignatureAlgorithm = Literal["ed25519", "ecdsa-p256", "rsa-2048", "rsa-3072", "sm2"]
HASH_ALGORITHMS: tuple[str, ...] = get_args(HashAlgorithm)
SIGNATURE_ALGORITHMS: tuple[str, ...] = get_args(SignatureAlgorithm)

SM2_CURVE_OID = "1.2.156.10197.1.301"  # sm2p256v1
SM2_SIGNER_ID = b"1234567812345678"  # GB/T 35276's default distinguishing identifier
# asn1crypto knows the curve once it is registered; registering twice is harmless
asn1_keys.NamedCurve.register("sm2p256v1", SM2_CURVE_OID, 32)


class CryptoError(ValueError):
    """An unknown algorithm, or a key that is not what it claims to be."""


# ---------------------------------------------------------------- hashes


def _hash(algorithm: str) -> hashes.HashAlgorithm:
    if algorithm == "sha256":
        return hashes.SHA256()
    if algorithm == "sm3":
        return hashes.SM3()
    raise CryptoError(f"unknown hash algorithm {algorithm!r} (known: {', '.join(HASH_ALGORITHMS)})")


class Hasher:
    """An incremental hash with the hashlib shape (update, digest, hexdigest)."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        # hashlib's sha256 is the C one the hub always used: keep it for speed on the hot path
        self._h = hashlib.sha256() if algorithm == "sha256" else None
        self._c = None if self._h is not None else hashes.Hash(_hash(algorithm))

    def update(self, data: bytes) -> None:
        (self._h or self._c).update(data)  # type: ignore[union-attr]

    def digest(self) -> bytes:
        if self._h is not None:
            return self._h.digest()
        return self._c.copy().finalize()  # type: ignore[union-attr]

    def hexdigest(self) -> str:
        return self.digest().hex()


def digest(algorithm: str, data: bytes) -> bytes:
    h = Hasher(algorithm)
    h.update(data)
    return h.digest()


def hexdigest(algorithm: str, data: bytes) -> str:
    return digest(algorithm, data).hex()


def file_hexdigest(algorithm: str, path: str | os.PathLike[str]) -> str:
    """The hex digest of a file, read a megabyte at a time."""
    h = Hasher(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def hex_text(algorithm: str, text: str) -> str:
    """The hex digest of a text's UTF-8 bytes (what the hash chains take)."""
    return hexdigest(algorithm, text.encode("utf-8"))


# ---------------------------------------------------------------- signatures


def _sm2_private_der(secret: bytes, public: bytes) -> bytes:
    ec_key = asn1_keys.ECPrivateKey(
        {
            "version": "ecPrivkeyVer1",
            "private_key": int.from_bytes(secret, "big"),
            "public_key": asn1_keys.ECPointBitString(b"\x04" + public),
        }
    )
    info = asn1_keys.PrivateKeyInfo(
        {
            "version": 0,
            "private_key_algorithm": asn1_keys.PrivateKeyAlgorithm(
                {"algorithm": "ec", "parameters": asn1_keys.ECDomainParameters(name="named", value="sm2p256v1")}
            ),
            "private_key": ec_key,
        }
    )
    return info.dump()


def _sm2_public_der(public: bytes) -> bytes:
    return asn1_keys.PublicKeyInfo(
        {
            "algorithm": asn1_keys.PublicKeyAlgorithm(
                {"algorithm": "ec", "parameters": asn1_keys.ECDomainParameters(name="named", value="sm2p256v1")}
            ),
            "public_key": asn1_keys.ECPointBitString(b"\x04" + public),
        }
    ).dump()


def _pem(label: str, der: bytes) -> bytes:
    import base64

    b64 = base64.encodebytes(der).replace(b"\n", b"")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return (
        b"-----BEGIN " + label.encode() + b"-----\n" + b"\n".join(lines) + b"\n-----END " + label.encode() + b"-----\n"
    )


def _unpem(pem: bytes) -> tuple[str, bytes]:
    from asn1crypto import pem as asn1_pem

    if not asn1_pem.detect(pem):
        return "", pem  # DER as is
    label, _headers, der = asn1_pem.unarmor(pem)
    return label, der


@dataclass(frozen=True)
class VerifyKey:
    """A public key and the algorithm it verifies."""

    algorithm: str
    der: bytes  # SubjectPublicKeyInfo

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.der).hexdigest()

    def pem(self) -> bytes:
        return _pem("PUBLIC KEY", self.der)

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when `signature` is this key's over `data`; False for any mismatch or garbage —
        a key that is not of its recorded algorithm included (an RSA key recorded as ed25519, a
        P-256 key as sm2): the record says how the signature was made, and nothing else passes."""
        try:
            if _algorithm_of_spki(self.der) != self.algorithm:
                return False
        except CryptoError:
            return False
        try:
            if self.algorithm == "sm2":
                from gmssl_pyx import sm2_verify

                return bool(sm2_verify(_sm2_point(self.der), data, signature, SM2_SIGNER_ID))
            key = serialization.load_der_public_key(self.der)
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, data)
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
            elif isinstance(key, rsa.RSAPublicKey):
                key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            else:
                return False
            return True
        except (InvalidSignature, ValueError, TypeError):
            return False
        except Exception as e:  # gmssl's own errors on malformed signatures
            if type(e).__module__.startswith("gmssl"):
                return False
            raise


def _sm2_point(spki_der: bytes) -> bytes:
    info = asn1_keys.PublicKeyInfo.load(spki_der)
    point = bytes(info["public_key"])
    if len(point) != 65 or point[0] != 4:
        raise CryptoError("an SM2 public key must be an uncompressed point")
    return point[1:]


@dataclass(frozen=True)
class SigningKey:
    """A private key and the algorithm it signs with. Never logged: repr shows the key id only."""

    algorithm: str
    _der: bytes  # PKCS#8

    def __repr__(self) -> str:
        return f"SigningKey({self.algorithm}, {self.public().key_id[:16]}…)"

    def pem(self) -> bytes:
        return _pem("PRIVATE KEY", self._der)

    def public(self) -> VerifyKey:
        if self.algorithm == "sm2":
            _secret, point = _sm2_parts(self._der)
            return VerifyKey("sm2", _sm2_public_der(point))
        key = serialization.load_der_private_key(self._der, password=None)
        der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return VerifyKey(self.algorithm, der)

    def public_key(self) -> VerifyKey:
        """`public`, under the name pyca/cryptography keys use (callers written for them work)."""
        return self.public()

    @property
    def key_id(self) -> str:
        return self.public().key_id

    def sign(self, data: bytes) -> bytes:
        if self.algorithm == "sm2":
            from gmssl_pyx import sm2_sign

            secret, point = _sm2_parts(self._der)
            return sm2_sign(secret, point, data, SM2_SIGNER_ID)
        key = serialization.load_der_private_key(self._der, password=None)
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(hashes.SHA256()))
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        raise CryptoError(f"unsupported key type {type(key).__name__}")

    def cryptography_key(self):
        """The pyca/cryptography private key (not for SM2, which pyca does not implement)."""
        if self.algorithm == "sm2":
            raise CryptoError("SM2 keys have no pyca/cryptography object")
        return serialization.load_der_private_key(self._der, password=None)


def _sm2_parts(pkcs8_der: bytes) -> tuple[bytes, bytes]:
    info = asn1_keys.PrivateKeyInfo.load(pkcs8_der)
    ec_key = info["private_key"].parsed
    secret = ec_key["private_key"].native.to_bytes(32, "big")
    public = ec_key["public_key"]
    point = bytes(public) if public.native is not None else b""
    if len(point) != 65:
        raise CryptoError("an SM2 private key must carry its public point")
    return secret, point[1:]


def _is_sm2(params: asn1_keys.ECDomainParameters | None) -> bool:
    return params is not None and params.name == "named" and params.chosen.dotted == SM2_CURVE_OID


def generate(algorithm: str) -> SigningKey:
    """A new key for `algorithm`."""
    if algorithm == "sm2":
        from gmssl_pyx import sm2_key_generate

        public, secret = sm2_key_generate()
        return SigningKey("sm2", _sm2_private_der(secret, public))
    if algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif algorithm == "ecdsa-p256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm in ("rsa-2048", "rsa-3072"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=int(algorithm[4:]))
    else:
        raise CryptoError(f"unknown signature algorithm {algorithm!r} (known: {', '.join(SIGNATURE_ALGORITHMS)})")
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return SigningKey(algorithm, der)


def _algorithm_named(alg: str, params: asn1_keys.ECDomainParameters | None, modulus: Callable[[], int]) -> str:
    """Our name for a key's algorithm, from what its private or public key info says: the one
    mapping for both (`modulus` is asked only for RSA)."""
    if alg == "ec":
        if _is_sm2(params):
            return "sm2"
        if params is not None and params.chosen.native == "secp256r1":
            return "ecdsa-p256"
        raise CryptoError(f"unsupported EC curve {params.chosen.native if params is not None else None}")
    if alg == "ed25519":
        return "ed25519"
    if alg in ("rsa", "rsassa_pss"):
        return "rsa-3072" if modulus().bit_length() > 2048 else "rsa-2048"
    raise CryptoError(f"unsupported key algorithm {alg}")


def _algorithm_of_pkcs8(der: bytes) -> str:
    info = asn1_keys.PrivateKeyInfo.load(der)
    key_alg = info["private_key_algorithm"]
    return _algorithm_named(
        key_alg["algorithm"].native, key_alg["parameters"], lambda: info["private_key"].parsed["modulus"].native
    )


def load_private(pem_or_der: bytes) -> SigningKey:
    """A PKCS#8 private key (PEM or DER), its algorithm read from the key itself. An SEC1
    "EC PRIVATE KEY" (what `openssl ecparam -genkey` writes) is taken too."""
    label, der = _unpem(pem_or_der)
    if label == "EC PRIVATE KEY":
        ec_key = asn1_keys.ECPrivateKey.load(der)
        params = ec_key["parameters"]
        if params.native is None:
            raise CryptoError("an EC PRIVATE KEY without its curve")
        info = asn1_keys.PrivateKeyInfo(
            {
                "version": 0,
                "private_key_algorithm": asn1_keys.PrivateKeyAlgorithm({"algorithm": "ec", "parameters": params}),
                "private_key": ec_key,
            }
        )
        der = info.dump()
    try:
        algorithm = _algorithm_of_pkcs8(der)
    except (ValueError, TypeError) as e:
        raise CryptoError(f"not a private key: {e}") from None
    if algorithm == "sm2":
        _sm2_parts(der)  # fails early when the public point is missing
    return SigningKey(algorithm, der)


@functools.lru_cache(maxsize=512)
def _algorithm_of_spki(der: bytes) -> str:
    """The algorithm a SubjectPublicKeyInfo's key is for, read from the key itself."""
    try:
        info = asn1_keys.PublicKeyInfo.load(der)
        key_alg = info["algorithm"]
        return _algorithm_named(
            key_alg["algorithm"].native, key_alg["parameters"], lambda: info["public_key"].parsed["modulus"].native
        )
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise CryptoError(f"not a public key: {e}") from None


def load_public(pem_or_der: bytes) -> VerifyKey:
    """A SubjectPublicKeyInfo (PEM or DER), its algorithm read from the key itself."""
    _label, der = _unpem(pem_or_der)
    return VerifyKey(_algorithm_of_spki(der), der)


def signing_key_of(key: object) -> SigningKey:
    """A SigningKey from a SigningKey or a pyca/cryptography private key (Ed25519, P-256, RSA):
    code and tests written for pyca keys keep working."""
    if isinstance(key, SigningKey):
        return key
    if isinstance(key, (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        der = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return SigningKey(_algorithm_of_pkcs8(der), der)
    raise CryptoError(f"not a private key: {type(key).__name__}")


def verify_key_of(key: object) -> VerifyKey:
    """A VerifyKey from a VerifyKey, a SigningKey (its public half) or a pyca/cryptography key."""
    if isinstance(key, VerifyKey):
        return key
    if isinstance(key, SigningKey):
        return key.public()
    if isinstance(key, (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        key = key.public_key()
    if isinstance(key, (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return load_public(der)
    raise CryptoError(f"not a public key: {type(key).__name__}")


# the OIDs X.509 and CMS name these algorithms by (seals and licences need them)
SIGNATURE_OIDS = {
    "sm2": "1.2.156.10197.1.501",  # SM2 signature with SM3
    "ecdsa-p256": "1.2.840.10045.4.3.2",  # ecdsa-with-SHA256
    "rsa-2048": "1.2.840.113549.1.1.11",  # sha256WithRSAEncryption
    "rsa-3072": "1.2.840.113549.1.1.11",
    "ed25519": "1.3.101.112",
}
HASH_OIDS = {"sha256": "2.16.840.1.101.3.4.2.1", "sm3": "1.2.156.10197.1.401"}

__all__ = [
    "HASH_ALGORITHMS",
    "HASH_OIDS",
    "SIGNATURE_ALGORITHMS",
    "SIGNATURE_OIDS",
    "CryptoError",
    "Hasher",
    "SigningKey",
    "VerifyKey",
    "digest",
    "file_hexdigest",
    "generate",
    "hex_text",
    "hexdigest",
    "load_private",
    "load_public",
    "signing_key_of",
    "verify_key_of",
]
