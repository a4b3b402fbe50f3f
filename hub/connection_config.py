"""Connections as ops configure them: one YAML per connection in `connections/` (the file name is
the connection's name, which catalogue items route to):

    type: rest                     # a connector type registered by a plugin
    description: 泰顺县医疗保障局经办系统
    limits: {concurrency: 4, max_attempts: 8}
    intake: {desks: [bank-xiahong], schedule: "*/15 * * * *"}   # only for intake sources
    config: {...}                  # validated by the connector type's Spec; secrets as references

Files are parsed when the hub opens; each `config` is validated (and its secrets resolved) when
a connector is made, so one broken connection does not stop the rest of the hub."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hub import yamlfile
from hub.connectors import Connector, Limits
from hub.errors import ConfigInvalid, ConfigProblem
from hub.secrets import secret_places, with_resolved


class IntakeSettings(BaseModel):
    """A connection that is also an intake source (a bank's SFTP drop, an enclave window system)."""

    model_config = ConfigDict(extra="forbid")
    desks: list[str] = Field(min_length=1, description="desks whose batches this source may deliver")
    schedule: str = Field(
        default="*/15 * * * *",
        pattern=r"^\s*([0-9A-Za-z*/,?-]+\s+){4}[0-9A-Za-z*/,?-]+\s*$",
        description="cron expression (five fields) for the intake DAG, county time",
    )
    max_record_bytes: int = Field(default=1 << 20, ge=1024, description="longest record line accepted")
    chunk: int = Field(default=2000, ge=1, le=10_000, description="records received per transaction")
    workers: int = Field(
        default=0,
        ge=0,
        le=16,
        description="processes checking and receiving a batch's records at once (PostgreSQL only); "
        "0: one per CPU core (up to 4) for a batch of four chunks or more",
    )
    max_batch_bytes: int = Field(default=8 << 30, ge=1 << 20, description="largest an archive may unpack to")
    max_files: int = Field(default=200_000, ge=1, description="most files an archive may hold")


class _ConnectionFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    description: str | None = None
    limits: Limits = Field(default_factory=Limits)
    intake: IntakeSettings | None = None
    config: dict[str, Any] = Field(default_factory=dict)


@dataclass
class Connection:
    name: str
    type: str
    description: str | None
    limits: Limits
    config: dict[str, Any]
    doc: yamlfile.YamlDoc
    intake: IntakeSettings | None = None
    home: Path | None = None  # the hub home: the folder that holds connections/

    def make(self, types: dict[str, type[Connector]], *, lease_seconds: float | None = None) -> Connector:
        """Validate `config` against the type's Spec and build the connector. Problems name the
        file and line; secret values never appear in them. With `lease_seconds` (the dispatch
        claim lease), a connector whose longest call does not fit well inside it is refused."""
        cls = types.get(self.type)
        if cls is None:
            raise ConfigInvalid([self.doc.problem(("type",), f"未知连接器类型 (unknown connector type): {self.type}")])
        self.doc.problems.clear()
        spec = yamlfile.validate(self.doc, cls.Spec, self.config, ("config",))
        if spec is None:
            raise ConfigInvalid(list(self.doc.problems))
        literal, unresolved = secret_places(spec, self.config)
        if literal:
            raise ConfigInvalid(
                [
                    self.doc.problem(
                        ("config", *loc),
                        f"config.{'.'.join(str(p) for p in loc)}: 不得在配置中直接写密钥，请用 ${{ENV_VAR}} 或 "
                        "file:/path (literal secrets are not allowed)",
                    )
                    for loc in literal
                ]
            )
        if unresolved:  # a plain SecretStr field: resolve its references as hub.secrets.Secret would
            try:
                resolved = with_resolved(self.config, unresolved)
            except ValueError as exc:
                raise ConfigInvalid([self.doc.problem(("config", *unresolved[0]), str(exc))]) from None
            spec = yamlfile.validate(self.doc, cls.Spec, resolved, ("config",))
            if spec is None:
                raise ConfigInvalid(list(self.doc.problems))
        try:
            connector = cls(self.name, spec)
        except Exception as exc:  # a CA file gone, a key that does not match its certificate, a plugin's bug
            raise ConfigInvalid(
                [self.doc.problem(("config",), f"无法创建连接 (cannot make the connector): {_why(exc)}")]
            ) from None
        connector.home = self.home
        doc = self.doc
        connector._locate = lambda loc: f"{doc.file}:{doc.line(('config', *loc))}"
        if lease_seconds is not None and (longest := connector.longest_call()) is not None:
            seconds, loc = longest
            if seconds > lease_seconds * LEASE_SHARE:
                connector.close()
                raise ConfigInvalid(
                    [
                        self.doc.problem(
                            ("config", *loc),
                            f"一次投递最长可达 {seconds:g} 秒，须低于派件租约 {lease_seconds} 秒的 {LEASE_SHARE:.0%} "
                            f"(one delivery may take {seconds:g} s: keep it below {LEASE_SHARE:.0%} of the dispatch "
                            "lease, or a delivery that outlives its claim could be made twice)",
                        )
                    ]
                )
        return connector


# a delivery's worst case must leave this share of the claim lease unused: the claim is taken
# before the call and its outcome written after it
LEASE_SHARE = 0.9


def _why(exc: Exception) -> str:
    """What went wrong making a connector, without a value that could be a secret: an OS error's
    reason and file, else only the kind of error."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    return type(exc).__name__


def load_connections(
    directory: Path,
    types: dict[str, type[Connector]] | None = None,
    *,
    why_unknown: Callable[[str], str] | None = None,
) -> tuple[dict[str, Connection], list[ConfigProblem]]:
    """Every connection file of `directory`, and the problems of the broken ones. A type no
    plugin in `types` provides is a problem of its file; `why_unknown(type)` says why (the plugin
    host knows whether such a plugin is installed but not allowed)."""
    connections: dict[str, Connection] = {}
    problems: list[ConfigProblem] = []
    for path in sorted(Path(directory).glob("*.yaml")) if Path(directory).is_dir() else []:
        doc = yamlfile.load(path, f"{Path(directory).name}/{path.name}")
        parsed = yamlfile.validate(doc, _ConnectionFile) if not doc.problems else None
        if parsed is not None and types is not None and parsed.type not in types:
            why = f" — {why_unknown(parsed.type)}" if why_unknown else ""
            doc.problems.append(doc.problem(("type",), f"未知连接器类型 (unknown connector type): {parsed.type}{why}"))
            parsed = None
        problems.extend(doc.problems)
        if parsed is not None:
            connections[path.stem] = Connection(
                path.stem,
                parsed.type,
                parsed.description,
                parsed.limits,
                parsed.config,
                doc,
                parsed.intake,
                home=Path(directory).resolve().parent,
            )
    return connections, problems


def by_connection(problems: list[ConfigProblem]) -> dict[str, list[ConfigProblem]]:
    """Problems grouped by the connection they belong to (each file is one connection, named by
    its stem): one broken file must not stop the hub from using the others."""
    out: dict[str, list[ConfigProblem]] = {}
    for p in problems:
        out.setdefault(Path(p.file).stem, []).append(p)
    return out
