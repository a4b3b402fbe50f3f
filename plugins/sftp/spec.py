"""The configuration of an `sftp` connection: where the server is, how its host key is pinned,
how we log in, and the folders of the exchange."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, FilePath, Tag, model_validator

from hub.secrets import Secret


class PasswordAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: Secret


class KeyAuth(BaseModel):
    """An Ed25519, ECDSA or RSA private key in OpenSSH or PEM form, e.g. `file:/run/secrets/sb_key`."""

    model_config = ConfigDict(extra="forbid")
    private_key: Secret
    passphrase: Secret | None = None


def _auth_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "key" if "private_key" in value else "password"
    return "key" if isinstance(value, KeyAuth) else "password"


Auth = Annotated[Annotated[PasswordAuth, Tag("password")] | Annotated[KeyAuth, Tag("key")], Discriminator(_auth_kind)]


class SftpSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    username: str = Field(min_length=1)
    auth: Auth = Field(description="{private_key: file:/path, passphrase: ${ENV}} or {password: ${ENV}}")
    known_hosts: FilePath | None = Field(default=None, description="known_hosts file naming the server's key")
    host_key_fingerprint: str | None = Field(
        default=None,
        pattern=r"^SHA256:[A-Za-z0-9+/]{43}=?$",
        description="the server's key as `ssh-keygen -lf` prints it, e.g. SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8",
    )
    outbox_dir: str = Field(min_length=1, description="remote directory the hub uploads parts to")
    inbox_dir: str = Field(min_length=1, description="remote directory the department writes results (or batches) to")
    encoding: Literal["utf-8", "gb18030"] = "utf-8"
    connect_timeout_seconds: float = Field(default=10, gt=0)
    timeout_seconds: float = Field(default=30, gt=0, description="per SFTP operation")
    marker_suffix: str = Field(default=".ok", pattern=r"^\.[A-Za-z0-9_-]+$")

    @model_validator(mode="after")
    def _host_key_pinned(self) -> SftpSpec:
        if (self.known_hosts is None) == (self.host_key_fingerprint is None):
            raise ValueError(
                "须且只须设置 known_hosts 或 host_key_fingerprint 之一以固定主机密钥 "
                "(pin the host key with exactly one of known_hosts or host_key_fingerprint)"
            )
        return self
