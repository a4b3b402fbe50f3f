"""Keys: the server's host key, always pinned (an unknown or changed key is refused, never
added), and the private key we log in with."""

from __future__ import annotations

import io

import paramiko

from plugins.sftp.errors import _Refused
from plugins.sftp.spec import KeyAuth


class _RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    """known_hosts pinning: a server not in the file is refused, never added."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise _Refused(
            f"未知主机密钥 unknown host key: {hostname} is not in known_hosts (server offered "
            f"{key.get_name()} {key.fingerprint})"
        )


class _PinnedFingerprint(paramiko.MissingHostKeyPolicy):
    """Fingerprint pinning: no host keys are loaded, so every connection comes here."""

    def __init__(self, expected: str):
        self.expected = expected.rstrip("=")

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if key.fingerprint != self.expected:
            raise _Refused(
                f"主机密钥不符 host key mismatch: {hostname} offered {key.get_name()} {key.fingerprint}, "
                f"pinned {self.expected}"
            )


def _load_key(auth: KeyAuth) -> paramiko.PKey:
    text = auth.private_key.get_secret_value()
    passphrase = auth.passphrase.get_secret_value() if auth.passphrase else None
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key(io.StringIO(text), password=passphrase)
        except paramiko.PasswordRequiredException:
            raise _Refused("私钥已加密但未给口令 private key is encrypted: passphrase required") from None
        except (paramiko.SSHException, ValueError, TypeError):
            continue  # not this key type, or a wrong passphrase; fixed messages only (no key text)
    raise _Refused("无法读取私钥 private key cannot be loaded (not an Ed25519/ECDSA/RSA key, or wrong passphrase)")
