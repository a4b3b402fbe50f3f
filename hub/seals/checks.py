"""What `hub doctor` says about seals: a department (or the hub) without one, a seal whose
certificate expires within 30 days (or has expired), a seal that no longer chains to a trusted
root, and a test CA's seals on PostgreSQL — a deployment, where seals must be real."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import NamedTuple

from hub.seals import certs, store

EXPIRY_WARNING_DAYS = 30


class SealProblem(NamedTuple):
    name: str  # the check's name, e.g. seal:ts-mzj
    ok: bool  # False fails `hub doctor`; a warning keeps it passing
    detail: str


def seal_checks(root: Path, holders: dict[str, str], *, production: bool, now: dt.datetime) -> list[SealProblem]:
    """One line per problem, and a summary `seals` line. Names authorities, never paths or keys."""
    out: list[SealProblem] = []
    tests = 0
    roots = store.trust_certs(root)
    for authority in sorted(holders):
        try:
            seal = store.load_seal_from(root, authority)
        except store.SealMissing:
            out.append(SealProblem(f"seal:{authority}", True, f"warning: no seal for {holders[authority]} "
                                   "(hub seals import, or hub seals test-ca in a sandbox)"))  # fmt: skip
            continue
        except Exception as e:  # unreadable key or certificate
            out.append(SealProblem(f"seal:{authority}", False, f"the seal does not load ({type(e).__name__})"))
            continue
        tests += seal.test
        left = seal.valid_until - now
        if left.total_seconds() <= 0:
            out.append(
                SealProblem(f"seal:{authority}", False, f"the certificate expired on {seal.valid_until:%Y-%m-%d}")
            )
            continue
        if left <= dt.timedelta(days=EXPIRY_WARNING_DAYS):
            out.append(SealProblem(f"seal:{authority}", True,
                                   f"warning: the certificate expires on {seal.valid_until:%Y-%m-%d} (in {left.days} days)"))  # fmt: skip
        elif problems := certs.chain_problems(seal.cert, seal.chain_certs, roots, now):
            out.append(SealProblem(f"seal:{authority}", False, "; ".join(problems)))
    if tests and production:
        out.append(SealProblem("seals", True, f"warning: {tests} seal(s) issued by the sandbox's test CA on a "
                               "production database — import real ones (hub seals import)"))  # fmt: skip
    else:
        out.append(SealProblem("seals", True, f"{len(holders)} authorities, {tests} test seal(s)"))
    return out
