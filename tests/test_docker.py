"""docker/: the Compose file against the Compose Specification, and what the deployment promises
(health checks, pinned images, replicas, CeleryExecutor, no inline secrets, loopback ports, every
knob documented, a multi-stage non-root image, signing routed to the one media node).

Nothing is built or started — there is no Docker engine here or in CI — so the files are checked
as text. tests/data/compose-spec.json is the Compose Specification's JSON Schema (Draft 7),
`schema/compose-spec.json` of github.com/compose-spec/compose-spec at commit
00655e2222608fa6eaecdf12ac5195889ca2244a, vendored so the test needs no network.

Every rule is a function returning its problems (an empty list: fine). Each runs on the real
files and on a broken copy that it must reject, so a rule that cannot fail shows up here."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
ENV_EXAMPLE = DOCKER / "hub.env.example"
NGINX = DOCKER / "nginx.conf"
SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"

HUB_IMAGE_DEFAULT = "tongban-hub:0.1.0"
PROXY = "proxy"  # the one service whose ports are meant for other machines
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|PRIVATE|SQL_ALCHEMY_CONN|RESULT_BACKEND|DATABASE_URL|_KEY$")
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^\s/:@]+:[^\s/@]+@")


# ---------------------------------------------------------------- loading


def compose_text() -> str:
    return COMPOSE.read_text(encoding="utf-8")


def load(text: str) -> dict[str, Any]:
    return yaml.safe_load(text)


def services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return doc.get("services") or {}


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def env_files(service: dict[str, Any]) -> list[str]:
    files = service.get("env_file") or []
    files = [files] if isinstance(files, str) else files
    return [f if isinstance(f, str) else f["path"] for f in files]


def with_defaults(value: str) -> str:
    """A Compose string as it is with no variables set: ${VAR:-default} -> default, $$ -> $."""
    return re.sub(r"\$\$|\$\{\w+(?::?-([^}]*))?\}", lambda m: "$" if m.group(0) == "$$" else (m.group(1) or ""), value)


def one_shots(doc: dict[str, Any]) -> set[str]:
    """Services others wait for to complete: they exit, the rest run."""
    found = set()
    for svc in services(doc).values():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, dict):
            found |= {name for name, d in deps.items() if d.get("condition") == "service_completed_successfully"}
    return found


def command(svc: dict[str, Any]) -> list[str]:
    cmd = svc.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def is_airflow(name: str, svc: dict[str, Any]) -> bool:
    return name.startswith("airflow-") or command(svc)[:1] == ["airflow"]


def documented_vars(text: str) -> tuple[dict[str, str], list[str]]:
    """hub.env.example: {name: value} (commented-out examples too), and problems: a variable
    without a comment line directly above it."""
    assign = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")
    found, problems = {}, []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = assign.match(line)
        if not m:
            continue
        found[m.group(2)] = m.group(3)
        above = lines[i - 1] if i else ""
        if not above.startswith("#") or assign.match(above):
            problems.append(f"hub.env.example:{i + 1}: {m.group(2)} has no comment saying what it is")
    return found, problems


# ---------------------------------------------------------------- rules: compose.yaml


def schema_errors(doc: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:200]}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


def healthcheck_problems(doc: dict[str, Any]) -> list[str]:
    problems = []
    shots = one_shots(doc)
    for name, svc in services(doc).items():
        if name in shots:
            if svc.get("restart", "no") not in ("no", "on-failure"):
                problems.append(f"{name}: a one-shot must not restart after it completes")
            continue
        hc = svc.get("healthcheck")
        test = (hc or {}).get("test")
        if not hc or hc.get("disable") or not test or test in ("NONE", ["NONE"]):
            problems.append(f"{name}: a long-running service without a health check")
    return problems


def pinned(image: str) -> bool:
    """An exact version (major.minor at least) or a digest; never latest, never untagged."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:  # no tag (a colon, if any, was a registry port)
        return False
    return tag != "latest" and re.search(r"\d+\.\d+", tag) is not None


def image_problems(doc: dict[str, Any]) -> list[str]:
    problems = []
    for name, svc in services(doc).items():
        image = with_defaults(str(svc.get("image", "")))
        if not image:
            problems.append(f"{name}: no image name (a built image needs a pinned tag too)")
        elif not pinned(image):
            problems.append(f"{name}: image {image!r} is not pinned to a version")
        inline = (svc.get("build") or {}).get("dockerfile_inline") if isinstance(svc.get("build"), dict) else None
        for base in re.findall(r"^FROM\s+(\S+)", inline or "", re.MULTILINE):
            if not pinned(with_defaults(base)):
                problems.append(f"{name}: inline Dockerfile base {base!r} is not pinned to a version")
    return problems


def replica_problems(doc: dict[str, Any]) -> list[str]:
    def replicas(name: str) -> int:
        svc = services(doc).get(name) or {}
        return int(with_defaults(str((svc.get("deploy") or {}).get("replicas", svc.get("scale", 1)))))

    problems = []
    for name in ("hub-api", "airflow-worker"):
        if replicas(name) < 2:
            problems.append(f"{name}: {replicas(name)} replica(s); a city-wide deployment runs two or more")
    if replicas("media") != 1:
        problems.append(f"media: {replicas('media')} replicas; signing sessions live in one process")
    return problems


def airflow_problems(doc: dict[str, Any], example: dict[str, str]) -> list[str]:
    problems = []
    if "redis" not in services(doc):
        problems.append("no redis service (the Celery broker)")
    airflow = {n: s for n, s in services(doc).items() if is_airflow(n, s)}
    needed = {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"}
    needed |= {"airflow-triggerer", "airflow-worker"}
    problems += [f"{n}: missing" for n in sorted(needed - set(airflow))]
    for name, svc in airflow.items():
        env = env_of(svc)
        if env.get("AIRFLOW__CORE__EXECUTOR") != "CeleryExecutor":
            problems.append(f"{name}: executor {env.get('AIRFLOW__CORE__EXECUTOR')!r}, not CeleryExecutor")
        if not env.get("AIRFLOW__CELERY__BROKER_URL", "").startswith("redis://redis:"):
            problems.append(f"{name}: the Celery broker is not the redis service")
        if not env.get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "").startswith("http://airflow-apiserver:8080/"):
            problems.append(f"{name}: the execution API is not airflow-apiserver")
        if env.get("AIRFLOW__CORE__DAGS_FOLDER") != "/opt/tongban/dags":
            problems.append(f"{name}: DAGs folder is not /opt/tongban/dags")
        if "hub.env" not in env_files(svc):
            problems.append(f"{name}: does not read hub.env (database URLs, Fernet key, JWT secret)")
    conn = example.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    if not conn.startswith("postgresql+psycopg://"):
        problems.append("hub.env.example: the metadata DB is not PostgreSQL through psycopg 3")
    if not example.get("AIRFLOW__CELERY__RESULT_BACKEND", "").startswith("db+postgresql+psycopg://"):
        problems.append("hub.env.example: the result backend is not PostgreSQL through psycopg 3")
    return problems


def secret_problems(doc: dict[str, Any], text: str) -> list[str]:
    problems = []
    for name, svc in services(doc).items():
        for key, value in env_of(svc).items():
            if SECRET_NAME.search(key) and not key.endswith("_FILE"):
                problems.append(f"{name}: {key} is set inline; secrets come from hub.env or secrets/")
            if URL_WITH_PASSWORD.search(value):
                problems.append(f"{name}: {key} holds a URL with a password")
    for line_no, line in enumerate(text.splitlines(), 1):
        if URL_WITH_PASSWORD.search(line):
            problems.append(f"compose.yaml:{line_no}: a URL with a password")
    for name, spec in (doc.get("secrets") or {}).items():
        if "file" not in spec and not spec.get("external"):
            problems.append(f"secret {name}: not from a file")
    return problems


def published_host_ip(port: Any) -> str | None:
    """The host address a `ports:` entry binds to ('' for every interface), None if unpublished."""
    if isinstance(port, dict):
        return with_defaults(str(port.get("host_ip", ""))) if port.get("published") is not None else ""
    parts = with_defaults(str(port)).rsplit(":", 2)
    return parts[0] if len(parts) == 3 else ""


def port_problems(doc: dict[str, Any]) -> list[str]:
    problems = []
    for name, svc in services(doc).items():
        if name == PROXY:
            continue
        for port in svc.get("ports") or []:
            ip = published_host_ip(port)
            if ip is not None and ip != "127.0.0.1":
                problems.append(f"{name}: port {port!r} is published beyond loopback")
    return problems


def interpolation_problems(text: str, documented: dict[str, str]) -> list[str]:
    """Every $ in compose.yaml is $$ (for the container's shell) or ${VAR:-default} with VAR in
    hub.env.example: a stray $HOSTNAME would be emptied by Compose, not by the shell."""
    problems = []
    for m in re.finditer(r"\$(\$|\{([A-Za-z_]\w*)(:?[-?+][^}]*)?\}|[A-Za-z_]\w*|)", text):
        line = text.count("\n", 0, m.start()) + 1
        if m.group(1) == "$":
            continue
        name, op = m.group(2), m.group(3) or ""
        if name is None:
            problems.append(
                f"compose.yaml:{line}: {m.group(0)!r} is interpolated by Compose; write $$ or ${{VAR:-default}}"
            )
            continue
        if name not in documented:
            problems.append(f"compose.yaml:{line}: ${{{name}}} is not documented in hub.env.example")
        if not op.startswith(":-"):
            problems.append(f"compose.yaml:{line}: ${{{name}}} has no default (plain `docker compose` must work)")
    return problems


def hub_service_problems(doc: dict[str, Any]) -> list[str]:
    """Every container of the hub image opens the same hub: hub.env, the hub home, the signing
    key (a `hub serve` seals sessions a dead process left, so all need the one key)."""
    problems = []
    for name, svc in services(doc).items():
        if with_defaults(str(svc.get("image", ""))) != HUB_IMAGE_DEFAULT:
            continue
        env = env_of(svc)
        if "hub.env" not in env_files(svc):
            problems.append(f"{name}: does not read hub.env")
        if env.get("HUB_HOME") != "/var/lib/tongban" or not any(
            str(v).startswith("hub-home:/var/lib/tongban") for v in svc.get("volumes") or []
        ):
            problems.append(f"{name}: not on the shared hub home")
        if env.get("HUB_SIGNING_KEY_FILE") != "/run/secrets/signing_key" or "signing_key" not in (
            svc.get("secrets") or []
        ):
            problems.append(f"{name}: without the evidence signing key")
    svcs = services(doc)
    media, api = svcs.get("media", {}), svcs.get("hub-api", {})
    if media.get("network_mode") != "host":
        problems.append("media: not on the host network (desks could not reach its UDP ports)")
    if "--workers" in command(media) and command(media)[command(media).index("--workers") + 1] != "1":
        problems.append("media: more than one process")
    for svc_name, svc in (("hub-api", api), ("media", media)):
        deps = svc.get("depends_on") or {}
        if (deps.get("hub-migrate") or {}).get("condition") != "service_completed_successfully":
            problems.append(f"{svc_name}: does not wait for hub-migrate to complete")
    return problems


# ---------------------------------------------------------------- rules: hub.env.example


def env_example_problems(text: str) -> list[str]:
    found, problems = documented_vars(text)
    for name, value in found.items():
        if SECRET_NAME.search(name) and value and "change-me" not in value:
            problems.append(f"hub.env.example: {name} has a value that is not a change-me placeholder")
    return problems


# ---------------------------------------------------------------- rules: Dockerfile


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]]  # (INSTRUCTION, arguments)
    args: dict[str, str]


def dockerfile_stages(text: str) -> list[Stage]:
    joined = re.sub(r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#")))
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        instr, _, rest = line.strip().partition(" ")
        instr, rest = instr.upper(), rest.strip()
        args = stages[-1].args if stages else global_args
        if instr == "ARG":
            key, _, default = rest.partition("=")
            args[key] = global_args.get(key, default) if stages and not default else default
        elif instr == "FROM":
            m = re.match(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            base = re.sub(r"\$\{?(\w+)\}?", lambda v: global_args.get(v.group(1), ""), m.group(1))
            stages.append(Stage(base, m.group(2), [], {}))
        elif stages:
            stages[-1].instructions.append((instr, rest))
    return stages


BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|cc|clang|make|build-essential|pkg-config)\b|\S+-dev\b")


def dockerfile_problems(text: str) -> list[str]:
    stages = dockerfile_stages(text)
    if len(stages) < 2:
        return [f"Dockerfile: {len(stages)} stage(s); the compilers stay in a builder stage"]
    problems = []
    names = {s.name for s in stages if s.name}
    for s in stages:
        if s.base not in names and not pinned(s.base):
            problems.append(f"Dockerfile: FROM {s.base!r} is not pinned to a version")
    final = stages[-1]

    def expand(value: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda v: final.args.get(v.group(1), v.group(0)), value)

    users = [expand(rest) for instr, rest in final.instructions if instr == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0", ""):
        problems.append("Dockerfile: the final stage runs as root")
    if not any(instr == "HEALTHCHECK" for instr, _ in final.instructions):
        problems.append("Dockerfile: no HEALTHCHECK in the final stage")
    for instr, rest in final.instructions:
        if instr == "RUN" and re.search(r"apt-get install|apk add", rest):
            packages = rest.split("install", 1)[1] if "install" in rest else rest
            for tool in BUILD_TOOLS.finditer(packages.split("&&")[0]):
                problems.append(f"Dockerfile: the final stage installs {tool.group(0)}")
    builder_runs = " ".join(rest for s in stages[:-1] for instr, rest in s.instructions if instr == "RUN")
    if not re.search(r"pip install -c constraints\.txt '\.\[airflow,video\]'", builder_runs):
        problems.append("Dockerfile: the builder does not install '.[airflow,video]' with constraints.txt")
    if re.search(r"pip install[^&]*\s-e\s", builder_runs):
        problems.append("Dockerfile: an editable install needs the source tree at run time")
    return problems


# ---------------------------------------------------------------- rules: nginx.conf


@dataclass
class Location:
    modifier: str  # '', '=', '^~', '~', '~*'
    pattern: str
    upstream: str | None


def _block_bodies(text: str, opener: str) -> list[str]:
    """Bodies of every `opener {...}` block (braces matched)."""
    bodies = []
    for m in re.finditer(opener + r"\s*\{", text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        bodies.append(text[m.end() : i - 1])
    return bodies


def nginx_tls_locations(conf: str) -> list[Location]:
    conf = re.sub(r"#[^\n]*", "", conf)
    tls = [b for b in _block_bodies(conf, r"\bserver") if re.search(r"listen\s+443\s+ssl", b)]
    if len(tls) != 1:
        return []
    found = []
    for m in re.finditer(r"location\s+(=|\^~|~\*?)?\s*(\S+)\s*\{([^{}]*)\}", tls[0]):
        proxy = re.search(r"proxy_pass\s+http://([\w.-]+)", m.group(3))
        found.append(Location(m.group(1) or "", m.group(2), proxy.group(1) if proxy else None))
    return found


def route(locations: list[Location], uri: str) -> Location | None:
    """nginx's choice: an exact match; else the longest prefix if it is ^~; else the first
    matching regex in file order; else the longest prefix."""
    for loc in locations:
        if loc.modifier == "=" and loc.pattern == uri:
            return loc
    prefixes = [loc for loc in locations if loc.modifier in ("", "^~") and uri.startswith(loc.pattern)]
    best = max(prefixes, key=lambda loc: len(loc.pattern), default=None)
    if best and best.modifier == "^~":
        return best
    for loc in locations:
        if loc.modifier in ("~", "~*") and re.search(loc.pattern, uri, re.IGNORECASE if loc.modifier == "~*" else 0):
            return loc
    return best


def upstream_servers(conf: str) -> dict[str, list[str]]:
    conf = re.sub(r"#[^\n]*", "", conf)
    return {
        m.group(1): re.findall(r"^\s*server\s+(\S+?)[\s;]", body, re.MULTILINE)
        for m in re.finditer(r"upstream\s+(\S+)\s*\{", conf)
        for body in _block_bodies(conf[m.start() :], r"upstream\s+" + re.escape(m.group(1)))[:1]
    }


def signing_paths() -> list[str]:
    """Every path the remote-signing plugin serves, with sample parameters."""
    from video.web import api, pages

    paths = [r.path for router in (api, pages) for r in router.routes]
    return [re.sub(r"\{[^}]+\}", "TS-2026-000123", p) for p in paths] + ["/static/signing/signing.js"]


OTHER_PATHS = ["/", "/login", "/healthz", "/api/v1/applications", "/api/v1/applications/TS-2026-000123"]
OTHER_PATHS += ["/applications/TS-2026-000123/receipt", "/static/app.css", "/s/TS-2026-000123"]


def nginx_problems(conf: str, doc: dict[str, Any]) -> list[str]:
    locations = nginx_tls_locations(conf)
    if not locations:
        return ["nginx.conf: no single `listen 443 ssl` server with locations"]
    servers = upstream_servers(conf)
    problems = []
    want = {
        "hub_media": ("media", services(doc).get("media", {})),
        "hub_api": ("hub-api", services(doc).get("hub-api", {})),
    }
    for upstream, (service, svc) in want.items():
        cmd = command(svc)
        port = cmd[cmd.index("--port") + 1] if "--port" in cmd else "8000"
        if servers.get(upstream) != [f"{service}:{port}"]:
            problems.append(f"nginx.conf: upstream {upstream} is {servers.get(upstream)}, not {service}:{port}")
    for uri in signing_paths():
        loc = route(locations, uri)
        if not loc or loc.upstream != "hub_media":
            problems.append(f"nginx.conf: {uri} does not go to the media node")
    for uri in OTHER_PATHS:
        loc = route(locations, uri)
        if not loc or loc.upstream != "hub_api":
            problems.append(f"nginx.conf: {uri} does not go to the hub-api replicas")
    proxy = services(doc).get(PROXY, {})
    if "media:host-gateway" not in (proxy.get("extra_hosts") or []):
        problems.append("proxy: cannot reach the media node on the host (extra_hosts media:host-gateway)")
    return problems


# ---------------------------------------------------------------- the real files pass


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return load(compose_text())


@pytest.fixture(scope="module")
def example() -> dict[str, str]:
    return documented_vars(ENV_EXAMPLE.read_text(encoding="utf-8"))[0]


def test_the_vendored_schema_is_a_draft7_schema():
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["title"] == "Compose Specification"
    assert {"service", "healthcheck", "deployment", "config", "secret"} <= set(schema["definitions"])


def test_compose_file_is_valid_under_the_compose_specification(doc):
    assert "version" not in doc  # obsolete in the Compose Specification
    assert schema_errors(doc) == []


@pytest.mark.parametrize(
    "rule",
    [healthcheck_problems, image_problems, replica_problems, port_problems, hub_service_problems],
    ids=lambda f: f.__name__,
)
def test_compose_rules_hold(doc, rule):
    assert rule(doc) == []


def test_airflow_runs_on_celery_with_redis_and_postgresql(doc, example):
    assert airflow_problems(doc, example) == []


def test_no_secret_is_written_in_compose(doc):
    assert secret_problems(doc, compose_text()) == []


def test_every_variable_compose_reads_is_documented(example):
    assert interpolation_problems(compose_text(), example) == []


def test_hub_env_example_documents_every_variable_with_placeholders_only():
    assert env_example_problems(ENV_EXAMPLE.read_text(encoding="utf-8")) == []


def test_dockerfile_is_multi_stage_pinned_non_root_and_without_compilers_at_run_time():
    assert dockerfile_problems(DOCKERFILE.read_text(encoding="utf-8")) == []


def test_nginx_routes_signing_to_the_media_node_and_the_rest_to_the_api(doc):
    assert nginx_problems(NGINX.read_text(encoding="utf-8"), doc) == []


def test_files_compose_refers_to_exist(doc):
    build = services(doc)["hub-migrate"]["build"]
    assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert all((DOCKER / c["file"]).is_file() for c in doc["configs"].values() if "file" in c)
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", "docker/hub.env", "docker/secrets"} <= set(ignore)
    assert ENV_EXAMPLE.is_file()  # hub.env itself is the operator's copy
    assert "cp docker/hub.env.example docker/hub.env" in (DOCKER / "README.md").read_text(encoding="utf-8")


# ---------------------------------------------------------------- broken copies are refused


def mutated(doc: dict[str, Any], change) -> dict[str, Any]:
    copy_ = copy.deepcopy(doc)
    change(copy_)
    return copy_


SCHEMA_BREAKS = {
    "unknown service key": lambda d: d["services"]["hub-api"].update(replica=3),
    "unknown depends_on condition": lambda d: d["services"]["hub-api"]["depends_on"]["hub-migrate"].update(
        condition="service_done"
    ),
    "unknown top-level key": lambda d: d.update(service={}),
    "healthcheck with unknown key": lambda d: d["services"]["redis"]["healthcheck"].update(every="10s"),
    "ports of the wrong type": lambda d: d["services"]["postgres"].update(ports="127.0.0.1:5432:5432"),
}


@pytest.mark.parametrize("change", SCHEMA_BREAKS.values(), ids=SCHEMA_BREAKS.keys())
def test_the_schema_refuses_a_broken_copy(doc, change):
    assert schema_errors(mutated(doc, change))


RULE_BREAKS = [
    (healthcheck_problems, lambda d: d["services"]["redis"].pop("healthcheck")),
    (healthcheck_problems, lambda d: d["services"]["hub-api"].update(healthcheck={"disable": True})),
    (healthcheck_problems, lambda d: d["services"]["hub-migrate"].update(restart="always")),
    (image_problems, lambda d: d["services"]["postgres"].update(image="postgres:latest")),
    (image_problems, lambda d: d["services"]["redis"].update(image="redis")),
    (image_problems, lambda d: d["services"]["postgres"].update(image="postgres:15")),
    (image_problems, lambda d: d["services"]["sftp-drop"]["build"].update(dockerfile_inline="FROM debian\n")),
    (replica_problems, lambda d: d["services"]["hub-api"]["deploy"].update(replicas=1)),
    (replica_problems, lambda d: d["services"]["airflow-worker"].pop("deploy")),
    (replica_problems, lambda d: d["services"]["media"]["deploy"].update(replicas=2)),
    (port_problems, lambda d: d["services"]["airflow-apiserver"].update(ports=["8080:8080"])),
    (port_problems, lambda d: d["services"]["postgres"].update(ports=["0.0.0.0:5432:5432"])),
    (port_problems, lambda d: d["services"]["sftp-drop"].update(ports=["${SFTP_DROP_ADDR:-0.0.0.0}:2222:22"])),
    (port_problems, lambda d: d["services"]["redis"].update(ports=[{"target": 6379, "published": 6379}])),
    (hub_service_problems, lambda d: d["services"]["hub-api"].update(secrets=["sftp_hub_key"])),
    (hub_service_problems, lambda d: d["services"]["media"].pop("network_mode")),
    (hub_service_problems, lambda d: d["services"]["media"].update(command=["hub", "serve", "--workers", "2"])),
]


@pytest.mark.parametrize(("rule", "change"), RULE_BREAKS, ids=lambda x: getattr(x, "__name__", "copy"))
def test_each_rule_refuses_a_broken_copy(doc, rule, change):
    assert rule(mutated(doc, change))


def test_the_proxy_alone_may_publish_beyond_loopback(doc):
    opened = mutated(doc, lambda d: d["services"][PROXY].update(ports=["0.0.0.0:443:443"]))
    assert port_problems(opened) == []


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s["airflow-scheduler"]["environment"].update(AIRFLOW__CORE__EXECUTOR="LocalExecutor"),
        lambda s: s["airflow-worker"]["environment"].update(AIRFLOW__CELERY__BROKER_URL="amqp://rabbit//"),
        lambda s: s["airflow-triggerer"].update(env_file=[]),
        lambda s: s.pop("airflow-worker"),
        lambda s: s.pop("redis"),
    ],
)
def test_the_airflow_rule_refuses_a_broken_copy(doc, example, change):
    broken = mutated(doc, lambda d: [svc.update(environment=dict(env_of(svc))) for svc in d["services"].values()])
    change(broken["services"])
    assert airflow_problems(broken, example)


def test_the_airflow_rule_refuses_a_metadata_db_without_psycopg3(doc, example):
    assert airflow_problems(doc, {**example, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://x"})
    assert airflow_problems(doc, {**example, "AIRFLOW__CELERY__RESULT_BACKEND": "db+postgresql://x"})


def test_the_secret_rule_refuses_inline_secrets(doc):
    inline = mutated(doc, lambda d: d["services"]["hub-api"].update(environment={"HUB_SECRET_KEY": "abc123abc123abc1"}))
    assert secret_problems(inline, compose_text())
    url = "  # HUB_DATABASE_URL=postgresql://hub:s3cret@postgres/hub\n"
    assert secret_problems(doc, compose_text() + url)
    env_secret = mutated(doc, lambda d: d["secrets"].update(leaky={"environment": "HUB_SECRET_KEY"}))
    assert secret_problems(env_secret, compose_text())


def test_the_interpolation_rule_refuses_undocumented_or_unescaped_variables(example):
    text = compose_text()
    assert interpolation_problems(text + "x: ${UNDOCUMENTED:-1}\n", example)
    assert interpolation_problems(text + "x: ${HUB_MEDIA_ADDR}\n", example)  # no default
    assert interpolation_problems(text + "x: 'celery@$HOSTNAME'\n", example)  # Compose would empty it
    assert interpolation_problems(text + "x: 'celery@$${HOSTNAME}'\n", example) == []


def test_the_env_example_rule_refuses_undocumented_variables_and_real_values():
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    assert env_example_problems(text + "\nUNEXPLAINED=1\n")
    assert env_example_problems(text + "\n# a real one slipped in\nHUB_SECRET_KEY=0f9e8d7c6b5a49382716\n")


DOCKERFILE_BREAKS = {
    "one stage": lambda t: re.sub(r"(?s)FROM \$\{PYTHON_IMAGE\} AS runtime.*", "", t),
    "latest base": lambda t: t.replace("python:3.11.14-slim-bookworm", "python:latest"),
    "untagged base": lambda t: t.replace("python:3.11.14-slim-bookworm", "python"),
    "root user": lambda t: t.replace("USER ${UID}:${UID}", "USER root"),
    "no user": lambda t: t.replace("USER ${UID}:${UID}", ""),
    "no healthcheck": lambda t: re.sub(r"HEALTHCHECK[^\n]*\\\n[^\n]*\n", "", t),
    "gcc at run time": lambda t: t.replace("libxml2 libxmlsec1 libxmlsec1-openssl", "gcc libxml2 libxmlsec1"),
    "headers at run time": lambda t: t.replace("libxml2 libxmlsec1 libxmlsec1-openssl", "libxml2-dev libxmlsec1"),
    "editable install": lambda t: t.replace(
        "pip install -c constraints.txt '.", "pip install -e -c constraints.txt '."
    ),
}


@pytest.mark.parametrize("change", DOCKERFILE_BREAKS.values(), ids=DOCKERFILE_BREAKS.keys())
def test_the_dockerfile_rule_refuses_a_broken_copy(change):
    text = DOCKERFILE.read_text(encoding="utf-8")
    broken = change(text)
    assert broken != text
    assert dockerfile_problems(broken)


NGINX_BREAKS = {
    "signing API to the replicas": lambda c: c.replace(
        "location /api/v1/signing/ {\n            proxy_pass http://hub_media;",
        "location /api/v1/signing/ {\n            proxy_pass http://hub_api;",
    ),
    "no route for starting a session": lambda c: c.replace(
        "location ~ ^/(api/v1/)?applications/[^/]+/signing$", "location /x"
    ),
    "everything to media": lambda c: c.replace(
        "location / {\n            proxy_pass http://hub_api;", "location / {\n            proxy_pass http://hub_media;"
    ),
    "media upstream elsewhere": lambda c: c.replace("server media:8001;", "server hub-api:8000;"),
}


@pytest.mark.parametrize("change", NGINX_BREAKS.values(), ids=NGINX_BREAKS.keys())
def test_the_nginx_rule_refuses_a_broken_copy(doc, change):
    conf = NGINX.read_text(encoding="utf-8")
    broken = change(conf)
    assert broken != conf
    assert nginx_problems(broken, doc)
