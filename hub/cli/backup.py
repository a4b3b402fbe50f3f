"""`hub backup create|verify|restore`: back up a hub (the database as one snapshot, then its
files, then MANIFEST.sha256) and restore a backup into a new home and an empty database, then
prove the result. scripts/backup and scripts/restore call these. See docs/backup.md.

ORDER MATTERS in `create`: the database first, then the files. The hub writes a file before the
row that refers to it (materials are stored, then the transaction commits; segments are closed,
then sealed), so every file a row in the snapshot refers to already exists when the copy
starts. A file written after the snapshot is harmless — nothing in the restored database refers
to it, and housekeeping sweeps it — whereas copying files first would let a row refer to a file
the backup does not have: data loss, found only on the day of the restore. `finish_backup`
proves it: every file the snapshot refers to must be in the backup, or the backup fails.

Secrets are not in a backup: the evidence signing key and secret.key are backed up apart, and
database URLs are shown masked (the restore's target comes from HUB_RESTORE_DATABASE_URL)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from hub import __version__
from hub import backup as b
from hub.backup_files import copy_entry, copy_tree, write_manifest
from hub.cli.common import fail, home_of
from hub.errors import HubError
from hub.settings import SIGNING_KEY_ENV, load_settings

app = typer.Typer(help="Back up a hub, check a backup, restore one into a new home.", no_args_is_help=True)

# applicants' ID numbers and documents: what a backup or a restore writes is its owner's only
PRIVATE = 0o077


def _write_info(out: Path, info: dict) -> None:
    (out / b.INFO).write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


@app.command()
def create(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(help="A new folder for the backup (e.g. /backup/hub/$(date +%F))")],
) -> None:
    """Back up the hub: a consistent snapshot of the database, then the material store, the
    recordings and evidence of signing sessions, the configuration and reports, then
    MANIFEST.sha256 over every file. Built in OUT.partial-<pid> and renamed to OUT only when
    complete: a folder named OUT is always a whole backup."""
    os.umask(PRIVATE)
    home = home_of(ctx)
    if out.exists():
        fail(f"{out}: already exists 已存在 (each backup gets a new folder, e.g. /backup/hub/$(date +%F))")
    out.parent.mkdir(parents=True, exist_ok=True)
    out = out.parent.resolve() / out.name
    stage = out.with_name(f"{out.name}.partial-{os.getpid()}")
    work = Path(tempfile.mkdtemp())
    try:  # a HubError is printed by `hub` itself (error: …, exit 1)
        _create(home, out, stage, work / "expected")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(stage, ignore_errors=True)


def _create(home: Path, out: Path, stage: Path, expected: Path) -> None:
    settings = load_settings(home)
    url = settings.resolved_database_url
    print(f"backup of {home} ({b.kind_of(url)}: {b.masked(url)}) -> {out}", flush=True)
    (stage / b.FILES).mkdir(parents=True)
    # 1. the database: one snapshot, with its counts and the list of files it refers to
    started = b.utc_text()
    database = b.dump_database(settings, stage, expected)
    info = {"format": b.FORMAT, "hub_version": __version__, "started_at": started, "database": database}
    _write_info(stage, info)
    c = database["counts"]
    print(
        f"database {database['url']} at revision {database['revision']}: {c['applications']} application(s), "
        f"{c['events']} event(s), {c['material_files']} material file(s), {c['evidence_packages']} evidence package(s)",
        flush=True,
    )
    # 2. the files (in-flight uploads and the `.live` locks of running sessions left out)
    files = stage / b.FILES
    changed = copy_tree(
        settings.path(settings.materials_dir), files / "materials", skip=lambda n: n.startswith(".incoming-")
    )
    changed += copy_tree(
        settings.path(settings.signing.recordings_dir), files / "recordings", skip=lambda n: n == ".live"
    )
    (files / "config").mkdir()
    (files / "reports").mkdir()
    for entry in b.HOME_ENTRIES:
        if not (home / entry).exists():
            continue
        if entry == "reports":
            changed += copy_tree(home / "reports", files / "reports")
        else:
            copy_entry(home, entry, files / "config")
    # the seals' certificates, chains, images and trusted roots; their private keys (*.key) are
    # secrets, kept apart like the evidence key (docs/backup.md)
    copy_tree(home / "seals", files / "config" / "seals", skip=lambda n: n.endswith(".key"))
    if changed:
        _warn(f"{len(changed)} file(s) changed while being copied (an open signing session?): {changed[0]}")
    # 3. every file the snapshot refers to is here; the key's public half; backup.json completed
    for warning in b.finish_backup(settings, stage, expected, info):
        _warn(warning)
    info["finished_at"] = b.utc_text()
    _write_info(stage, info)
    print("files: " + ", ".join(f"{n} {part}" for part, n in info["files"].items()), flush=True)
    # 4. the manifest, over every file (`sha256sum -c MANIFEST.sha256` checks it by hand)
    listed = write_manifest(stage)
    if out.exists():  # checked at the start; someone made it meanwhile: never merge into it
        raise HubError(f"{out}: appeared while the backup was made; not replaced")
    stage.rename(out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"backup complete: {out} ({listed} files, {size / 2**20:.1f} MiB)")


@app.command()
def verify(backup: Annotated[Path, typer.Argument(help="A backup folder")]) -> None:
    """Check a backup against its MANIFEST.sha256: every file listed is there with its sha256,
    and nothing else is. Exit 1 naming the first problems."""
    print(f"{b.MANIFEST}: {b.check_manifest(backup)} file(s) match")


@app.command()
def restore(
    backup: Annotated[Path, typer.Argument(help="The backup folder")],
    new_home: Annotated[Path, typer.Argument(help="The new hub home: a new or empty folder")],
    database_url: Annotated[
        str | None,
        typer.Option(
            envvar=b.RESTORE_URL_ENV,
            show_envvar=True,
            help="The EMPTY target database (default for an SQLite backup: hub.db in NEW_HOME). Better in "
            "the environment, or its password in PGPASSWORD or ~/.pgpass: a command line is visible in `ps`",
        ),
    ] = None,
    signing_key: Annotated[
        Path | None,
        typer.Option(
            help="The hub's evidence signing key (kept apart from the backup): checked against the backup's "
            "public key, installed at signing.key_file"
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Restore over a non-empty home, folders and database (pg_restore --clean)")
    ] = False,
) -> None:
    """Restore a backup into a NEW hub home and an EMPTY database, bring the schema up to this
    code's migrations, and prove the result: every application's event chain, every material
    file, every evidence package, and the row counts against backup.json. Nothing is written
    until every check passed. Exit 0: restored and verified; 1: refused, or verification failed."""
    os.umask(PRIVATE)
    # the production hub's settings must not leak into the restored one (its database, its key)
    for name in ("HUB_HOME", "HUB_DATABASE_URL", SIGNING_KEY_ENV):
        os.environ.pop(name, None)
    if database_url:
        os.environ[b.RESTORE_URL_ENV] = database_url
    if not backup.is_dir():
        fail(f"{backup}: no such backup folder")
    new_home.parent.mkdir(parents=True, exist_ok=True)
    new_home = new_home.parent.resolve() / new_home.name
    if _restore(backup, new_home, signing_key, force):
        fail(f"restored into {new_home}, but verification FAILED (above): do not put this hub into service")
    print(f"restore complete and verified: {new_home}")


def _restore(backup: Path, home: Path, key: Path | None, force: bool) -> bool:
    # 1. checks, before anything is written
    print(f"{b.MANIFEST}: {b.check_manifest(backup)} file(s) match", flush=True)
    found = b.preflight(backup, home, force=force, signing_key=key)
    print(f"restoring {backup} -> {home} ({found['DB_SHOWN']})", flush=True)
    # 2. the database, then the configuration (pointed at the new database) and the files
    b.restore_database(backup, home, force=force)
    home.mkdir(parents=True, exist_ok=True)
    shutil.copytree(backup / b.FILES / "config", home, symlinks=True, dirs_exist_ok=True)
    b.point_home(home)
    copy_tree(backup / b.FILES / "materials", Path(found["MATERIALS"]))
    copy_tree(backup / b.FILES / "recordings", Path(found["RECORDINGS"]))
    if (backup / b.FILES / "reports").is_dir():
        copy_tree(backup / b.FILES / "reports", home / "reports")
    target = Path(found["KEY_TARGET"])
    if key is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(key, target)
        os.chmod(target, 0o600)
    # 3. the schema up to this code (a backup from an older release), then the proof — by the
    #    `hub` commands themselves, in a process of their own that sees only the restored hub
    env = dict(os.environ)
    if url := os.environ.get(b.RESTORE_URL_ENV):
        env["HUB_DATABASE_URL"] = url  # else SQLite in the new home: its hub.yaml says so

    def hub(*args: str) -> bool:
        sys.stdout.flush()
        sys.stderr.flush()
        return subprocess.run([sys.executable, "-m", "hub", "--home", str(home), *args], env=env).returncode == 0

    if not hub("db", "upgrade"):
        raise HubError("hub db upgrade failed (above): the restored database is not at this code's schema")
    failed = False
    if problems := b.compare(backup, home):
        for problem in problems:
            print(f"FAIL count {problem}", file=sys.stderr)
        failed = True
    else:
        counts = b.read_info(backup)["database"]["counts"]
        print("counts match the backup: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v is not None))
    failed |= not hub("apps", "verify-all")
    public = ["--public-key", found["PUBLIC_KEY"]] if found["PUBLIC_KEY"] else []
    failed |= not hub("evidence", "verify", "--all", *public)
    if not failed and key is None and found["PUBLIC_KEY"] and not target.is_file():
        print(
            f"note: no --signing-key: install the hub's signing key at {target} before sealing new sessions",
            file=sys.stderr,
        )
    return failed
