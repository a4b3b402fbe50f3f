"""Faults as DeliveryErrors, with fixed messages that never carry key material, and the check
that keeps names from a part, a batch or a department's result inside their folder."""

from __future__ import annotations

import socket

import paramiko

from hub.connectors import DeliveryError


class _Refused(Exception):
    """A connection we refuse or cannot make for a reason ops must fix (never retried)."""


def _error(name: str, action: str, exc: BaseException) -> DeliveryError:
    """A fault as a DeliveryError. Messages are built here from fixed texts, paths and the server's
    status text, never from exception text that could carry key material."""
    prefix = f"{name}: {action}"
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, _Refused):
        return DeliveryError(f"{prefix}: {exc}", retryable=False)
    if isinstance(exc, paramiko.BadHostKeyException):
        return DeliveryError(
            f"{prefix}: 主机密钥不符 host key mismatch: {exc.hostname} offered {exc.key.get_name()} "
            f"{exc.key.fingerprint}, known_hosts has {exc.expected_key.fingerprint}",
            retryable=False,
        )
    if isinstance(exc, paramiko.AuthenticationException):
        return DeliveryError(f"{prefix}: 认证失败 authentication failed", retryable=False)
    if isinstance(exc, PermissionError):
        return DeliveryError(f"{prefix}: 权限不足 permission denied{_where(exc)}", retryable=False)
    if isinstance(exc, FileNotFoundError):
        return DeliveryError(f"{prefix}: 路径不存在 no such file or directory{_where(exc)}", retryable=False)
    if isinstance(exc, TimeoutError):
        return DeliveryError(f"{prefix}: 超时 timeout", retryable=True)
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError | ConnectionError):
        return DeliveryError(f"{prefix}: 连接失败 connection failed ({type(exc).__name__})", retryable=True)
    if isinstance(exc, socket.gaierror):
        return DeliveryError(f"{prefix}: 无法解析主机名 cannot resolve host", retryable=True)
    if isinstance(exc, OSError) and exc.errno is None and exc.args:
        # an SFTP status other than "no such file"/"permission denied": the server's own text
        return DeliveryError(f"{prefix}: SFTP 失败 failure: {str(exc.args[0])[:200]}", retryable=True)
    return DeliveryError(f"{prefix}: SSH 错误 error ({type(exc).__name__})", retryable=True)


def _where(exc: OSError) -> str:
    return f": {exc.filename}" if exc.filename else ""


def _safe_name(name: str, what: str) -> str:
    """One path component, not hidden: a name from a part, a batch or a department's result file
    must not lead out of its directory (`../`, `/etc/...`) or onto our temporary files."""
    if not name or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise DeliveryError(f"不安全的名称 unsafe {what} name: {name!r}", retryable=False)
    return name
