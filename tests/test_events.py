"""The event chain: every transition is an event carrying the previous event's hash; an edited,
removed or reordered event is detected."""

import json
import random
from datetime import datetime
from itertools import pairwise

from sqlalchemy import delete, update

from hub import applications as svc
from hub.events import FIELDS, GENESIS, event_json, verify_chain
from hub.storage.tables import Application, Event
from tests.support.samples import TELLER, elderly_card, officer

MZJ = officer("ts-mzj")


def _walk(hub):
    app = svc.create(hub, elderly_card(), TELLER)
    for who, action in [(TELLER, "pre_review"), (MZJ, "accept"), (MZJ, "start_review"), (MZJ, "approve")]:
        app = svc.transition(hub, app.number, action, who)
    return app


def test_chain_links_every_event(hub):
    app = _walk(hub)
    report = verify_chain(app)
    assert (
        report.ok and report.events == len(app.events) == 9
    )  # create, submit, pre_review, accept, start_review, start, approve, licence_issued, decide
    assert all(e.prev_hash == p.hash for p, e in pairwise(app.events))


def test_edited_event_is_detected(hub):
    app = _walk(hub)
    with hub.transaction() as s:
        s.execute(update(Event).where(Event.application_id == app.id, Event.seq == 4).values(actor="someone else"))
    report = verify_chain(svc.read(hub, app.number, MZJ))
    assert not report.ok and report.problem.startswith("event #4 (accept)")


def test_removed_event_is_detected(hub):
    app = _walk(hub)
    with hub.transaction() as s:
        s.execute(delete(Event).where(Event.application_id == app.id, Event.seq == 3))
    report = verify_chain(svc.read(hub, app.number, MZJ))
    assert not report.ok and "missing" in report.problem


def test_state_edited_behind_the_chain_is_detected(hub):
    app = _walk(hub)
    with hub.transaction() as s:
        s.execute(update(Application).where(Application.id == app.id).values(state="delivered"))
    report = verify_chain(svc.read(hub, app.number, MZJ))
    assert not report.ok and "not the chain's decided" in report.problem


def test_removed_newest_events_are_detected(hub):
    app = _walk(hub)
    with hub.transaction() as s:
        s.execute(delete(Event).where(Event.application_id == app.id, Event.seq >= 7))  # approve, decide
        s.execute(update(Application).where(Application.id == app.id).values(state="in_review"))
    report = verify_chain(svc.read(hub, app.number, MZJ))
    assert not report.ok and "newest events are missing" in report.problem


def _reference_json(number: str, fields: dict) -> str:
    """What an event's hash has always covered: the event as one dict, canonical json.dumps."""
    payload = {k: fields[k] for k in FIELDS} | {
        "application": number,
        "at": fields["at"].isoformat(timespec="microseconds") + "Z",
    }
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _random_value(rng: random.Random, depth: int = 0):
    kinds = ["str", "int", "none", "bool", "float"] + (["list", "dict"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "str":
        alphabet = 'ab中文"\\\n\t\x00\x1f\x7f\u2028é😀/<>&'
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
    if kind == "int":
        return rng.choice([0, -1, 7, 2**70, -(2**63)])
    if kind == "float":
        return rng.choice([0.1, -2.5, 1e300, 3.0])
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == "dict":
        return {f"k{rng.randint(0, 9)}中": _random_value(rng, depth + 1) for _ in range(3)}
    return None


def test_event_text_is_the_canonical_json_of_the_event():
    """`event_json` writes the canonical text by hand for speed; it must be exactly json.dumps's."""
    rng = random.Random(20261202)
    texts = [None, "", "柜员王芳", 'quote " and \\ backslash', "line\nbreak\ttab\x01", "😀 \u2028 é", "a" * 300]
    for i in range(2000):
        fields = {
            "seq": rng.choice([1, 2, 99, 2**40]),
            "part_id": rng.choice([None, "9f0c2c1e-5d0b-4d55-9a0b-7e1f3c2d4b5a"]),
            "action": rng.choice(["create", "pre_review", "补正"]),
            "from_state": rng.choice(texts),
            "to_state": rng.choice(texts),
            "actor": rng.choice(texts[1:]),
            "role": rng.choice(["teller", "system"]),
            "desk": rng.choice(texts),
            "at": datetime(2026, 12, 2, 4, rng.randint(0, 59), 7, rng.choice([0, 1, 999_999])),
            "reason": rng.choice(texts),
            "data": rng.choice([{}, {"channel": "bank"}, _random_value(rng) if i % 3 else {"x": [1, {"b": None}]}]),
            "prev_hash": rng.choice([GENESIS, "ab" * 32]),
        }
        number = rng.choice(["330329-20261202-00001", 'odd "number" 中'])
        assert event_json(number, fields) == _reference_json(number, fields), fields
