"""`archive-drop`: the county archive's importer reads one folder per part from a shared folder
(a NAS mount): `<part_id>/manifest.json`, the materials beside it, `manifest.sig` (HMAC-SHA256 of
the manifest with a key both sides hold) and, last, the empty marker `<part_id>.ok`. When it has
filed the case it writes `<part_id>/receipt.json`: {"status": "filed" | "refused", "note": …}."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
from pathlib import Path

from pydantic import BaseModel, ConfigDict, DirectoryPath, Field

from hub.connectors import CheckResult, Connector, PartMessage, PollFailure, Receipt, Update
from hub.secrets import Secret  # a pydantic SecretStr works too: the hub enforces references for both

STATUSES = {"filed": "approved", "refused": "denied", "filing": "in_review"}


class ArchiveDropSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error with its file and line
    folder: DirectoryPath = Field(description="the archive's import folder (mounted share)")
    signing_key: Secret = Field(description="HMAC key the archive checks manifests with: ${ENV} or file:/path")


class ArchiveDrop(Connector):
    type = "archive-drop"
    Spec = ArchiveDropSpec
    description = "县档案馆导入目录: one folder per part, materials beside, HMAC-signed manifest"

    def check(self) -> CheckResult:
        probe = self.spec.folder / ".hub-check"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            return CheckResult(ok=False, message=f"导入目录不可写 (import folder not writable: {exc.strerror})")
        return CheckResult(ok=True, message=f"import folder writable: {self.spec.folder}")

    def submit(self, part: PartMessage) -> Receipt:
        marker = self.spec.folder / f"{part.part_id}.ok"
        if marker.exists():  # delivered before (the part id is the idempotency key)
            return Receipt(part_id=part.part_id, remote_id=part.part_id)
        target = self.spec.folder / part.part_id
        target.mkdir(exist_ok=True)
        files = []
        for i, ref in enumerate(part.materials):
            name = f"{i:02d}-{ref.sha256[:16]}{Path(ref.filename).suffix}"
            # the bytes come from the hub's store, checked against the sha256 recorded at intake
            with self.materials.open(ref) as src, (target / name).open("wb") as out:
                shutil.copyfileobj(src, out)
            files.append({"material": ref.name, "file": name, "sha256": ref.sha256})
        manifest = json.dumps(
            {"part": part.model_dump(mode="json", exclude={"materials"}), "files": files}, ensure_ascii=False
        ).encode()
        (target / "manifest.json").write_bytes(manifest)
        key = self.spec.signing_key.get_secret_value().encode()
        (target / "manifest.sig").write_text(hmac.new(key, manifest, hashlib.sha256).hexdigest())
        fd = os.open(marker, os.O_CREAT | os.O_WRONLY, 0o644)  # last: the importer waits for it
        os.close(fd)
        return Receipt(part_id=part.part_id, remote_id=part.part_id)

    def poll(self, receipts: list[Receipt]) -> list[Update | PollFailure]:
        out: list[Update | PollFailure] = []
        for r in receipts:
            path = self.spec.folder / r.remote_id / "receipt.json"
            if not path.exists():
                continue  # not filed yet
            try:
                answer = json.loads(path.read_bytes()[:65536])
                status = STATUSES[answer["status"]]
            except (ValueError, KeyError, TypeError) as exc:
                out.append(
                    PollFailure(part_id=r.part_id, remote_id=r.remote_id, message=f"receipt unreadable: {exc!r}")
                )
                continue
            out.append(Update(part_id=r.part_id, remote_id=r.remote_id, status=status, reason=answer.get("note")))
        return out
