"""Scale: the hub with 200,000 applications over a year (issue 21, "Scale" and "Benchmark").

    .venv/bin/python benchmarks/scale.py all  [--apps 200000] [--runs 5]     # fill, then time
    .venv/bin/python benchmarks/scale.py fill [--apps 200000]                # fill only
    .venv/bin/python benchmarks/scale.py time [--runs 5]                     # time a filled database
    .venv/bin/python benchmarks/scale.py sweeps                              # the sweeps alone

**Fill.** A dedicated PostgreSQL database (`--db`, default `hub_scale_bench` on 127.0.0.1:5432,
dropped and created again by `fill`) and a hub home made by `hub init` (`--home`). The fill
simulates each application's life in Python — desk and item from the catalogue (only pairs a
desk may collect), received over the last 365 days on working days, 初审 at bank and enclave
desks, 受理 (or 不予受理), 补正 before or during review with the clock stopped and restarted by
the working-day calendar, review and decision per part, 出件, 送达, withdrawals, 容缺
commitments, ratings with bad ones opening follow-ups, some closed — and cuts it at the present:
whatever had not happened yet by now has not happened, so recent applications are open and the
ones an officer sat on are overdue. Every event goes through `hub.events.chain`, so the chains
verify (`hub apps verify NUMBER`). Rows are written with COPY in chunks (memory stays flat).
Not written: material files (no blobs, no application_materials), outbox rows, partner traffic,
audit entries — the pages timed here list cases, they do not open files.

**Time.** One real `hub serve` (one worker), users made with `hub users add`, logged in through
the real `/login` form; each page is requested once to warm up, then `--runs` times in turn,
medians reported. The bare SQL beside it: a second server, `python benchmarks/scale.py
capture-serve`, is the same `hub serve` with a SQLAlchemy `before_cursor_execute` hook that
records every statement and its parameters; each page is requested once from it (requests are
sequential, so the statements between two requests are that page's), and the recorded
statements are replayed with psycopg on one connection, in one transaction rolled back at the
end (the page's own writes — session last-seen, audit — are replayed but not kept), `--runs`
times. The sweeps (`hub run deadlines`, `hub apps warnings`) run as child processes; wall time
and peak RSS come from `os.wait4`.

The pages are found by URL and a missing one is reported, not fatal: the teller's to-do is
`GET /` for a teller (before issue 21 that redirects to the item grid /intake: reported as
"no to-do page"). The inbox's correctness: every case on its first page must be open, and if
the department has at least a page of overdue cases, the page must hold only overdue ones,
among them the most overdue (checked against SQL on the tables).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time as clock
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG = "postgresql://postgres@127.0.0.1:5432"
DB = "hub_scale_bench"
HOME = Path("/tmp/hub-scale-bench/home")
BJ = timedelta(hours=8)  # Asia/Shanghai has no daylight saving
CHUNK = 5000
CLOCKED_STATES = ("accepted", "in_review", "supplement_requested")
SWEEP_AT = timedelta(minutes=5)  # the hourly sweep's first run of a Beijing day

# ---------------------------------------------------------------- the fill


SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红建国建华文英志强春梅海燕德明国华金凤"
REJECT_REASONS = ["材料不符合法定形式", "申请事项不属于本机关职权范围", "申请人不符合申请条件，不予受理。"]
SUPPLEMENT_REASONS = [
    "身份证复印件不清晰，请重新提供",
    "缺少户口簿首页，请补充",
    "表单中联系电话有误，请更正（须为手机号）",
]
DENY_REASONS = ["经审查，不符合办理条件", "申请人已在其他地区办理，不予重复办理"]
WITHDRAW_REASONS = ["申请人申请撤回", "申请人信息填写错误，撤回后重新申请"]
BAD_COMMENTS = ["等了很久，没人说明进度。", "窗口说要补材料，但没有一次性告知！", None]
GOOD_COMMENTS = ["办事很快，点赞", "服务态度好", None, None, None]


class Stop(Exception):
    """The application's next step lies in the future: its life so far is all there is."""


@dataclass
class Plan:
    """What the fill may make: desks with the subjects they collect, and the catalogue facts used."""

    hub: Any
    pairs: list[tuple[Any, Any, list[Any]]]  # desk, subject, its items
    forms: dict[str, dict[str, Any]]

    @classmethod
    def of(cls, hub: Any) -> Plan:
        from hub.applications.create import _who_decides
        from hub.catalog.forms import validate_form

        cat = hub.catalog
        pairs, forms = [], {}
        subjects = [*cat.items.values(), *cat.bundles.values()]
        for desk in cat.desks.values():
            if desk.channel.value == "partner":
                continue
            for s in subjects:
                items = cat.items_of(s)
                if desk.channel not in s.channels or any(i.partner for i in items) or _who_decides(hub, s, desk):
                    continue
                pairs.append((desk, s, items))
                if s.code not in forms:
                    forms[s.code] = validate_form(cat.form_of(s), _form_values(cat.form_of(s)))[0]
        if not pairs:
            raise RuntimeError("the catalogue has no item any desk may collect")
        return cls(hub, pairs, forms)


def _form_values(fields: list[Any]) -> dict[str, Any]:
    """A plausible value for each field of a form (what does not validate is left out)."""
    out: dict[str, Any] = {}
    for f in fields:
        out[f.name] = {
            "string": "泰顺县罗阳镇建设路1号" if "地址" in f.label else "测试填写内容",
            "text": "申请人说明：按规定提交。",
            "integer": int(f.min or 1),
            "decimal": float(f.min or 1),
            "date": "2026-01-15",
            "boolean": True,
            "choice": (f.options or [""])[0],
            "phone": "13800001234",
            "id_number": "330329195003150213",
            "uscc": "91330329MA2AB1CD2X",
            "division": "330329",
        }[f.type]
    return out


_ADDED: dict[tuple[int, date, int], date] = {}
_WORKDAY: dict[tuple[int, date], bool] = {}


def _add_workdays(calendar: Any, start: date, n: int) -> date:
    key = (id(calendar), start, n)
    if (d := _ADDED.get(key)) is None:
        try:
            d = calendar.add_workdays(start, n)[0]
        except Exception:  # outside the calendar's years: weekdays only
            d, left = start, n
            while left:
                d += timedelta(days=1)
                left -= d.weekday() < 5
        _ADDED[key] = d
    return d


def _is_workday(calendar: Any, d: date) -> bool:
    key = (id(calendar), d)
    if (w := _WORKDAY.get(key)) is None:
        try:
            w = calendar.is_workday(d)
        except Exception:
            w = d.weekday() < 5
        _WORKDAY[key] = w
    return w


def _workdays_between(calendar: Any, a: date, b: date) -> int:
    try:
        return calendar.workdays_between(a, b)
    except Exception:
        return sum(1 for k in range(1, (b - a).days + 1) if (a + timedelta(days=k)).weekday() < 5)


def _id_number(rng: random.Random, born: date) -> str:
    from hub.ids import id_check_digit

    first = f"330329{born:%Y%m%d}{rng.randrange(1000):03d}"
    return first + id_check_digit(first)


class Life:
    """One application's life, simulated step by step until it reaches the present."""

    def __init__(
        self,
        plan: Plan,
        rng: random.Random,
        now: datetime,
        app_id: int,
        seq_of: Callable[[str, date], str],
        rating_id: Callable[[], int],
    ):
        from hub.lifecycle import Role

        self.plan, self.rng, self.now, self.cal = plan, rng, now, plan.hub.calendar
        self.yellow = plan.hub.settings.yellow_days
        self.rating_id = rating_id
        cat = plan.hub.catalog
        desk, subject, items = rng.choice(plan.pairs)
        self.desk, self.subject, self.items = desk, subject, items
        role = {"bank": Role.teller, "enclave": Role.enclave_clerk}.get(desk.channel.value, Role.clerk)
        self.front = (f"{desk.name[:6]}窗口{rng.choice('甲乙丙')}", role.value, desk.code)
        self.officers = {
            i.department: (f"{cat.departments[i.department].short_name}审批员{rng.choice('甲乙丙丁')}", "officer")
            for i in items
        }
        # received on a working day of the last year, in office hours
        for _ in range(5):
            day = (now + BJ).date() - timedelta(days=rng.randrange(365))
            if _is_workday(self.cal, day):
                break
        self.t = self._at(day)
        if self.t > now:
            self.t = now - timedelta(minutes=rng.randrange(1, 600))
        self.events: list[dict[str, Any]] = []
        self.parts = [
            {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "application_id": app_id,
                "position": k,
                "item_code": i.code,
                "title": i.title,
                "department_code": i.department,
                "connection": i.connection,
                "state": "pending",
                "promised_days": i.promised_days,
                "due_date": None,
                "decided_at": None,
            }
            for k, i in enumerate(items)
        ]
        eligibility = [i.eligibility for i in items if i.eligibility]
        lo = max([e.min_age or 0 for e in eligibility] + [18])
        hi = min([e.max_age or 200 for e in eligibility] + [lo + 30 if lo >= 60 else 75])
        age = rng.randint(lo, max(lo, hi))
        today = (now + BJ).date()
        born = date(today.year - age - 1, rng.randint(1, 12), rng.randint(1, 28))
        self.app: dict[str, Any] = {
            "id": app_id,
            "number": seq_of(desk.acts_for, (self.t + BJ).date()),
            "kind": "bundle" if len(items) > 1 or subject.code.startswith("YJS-") else "item",
            "subject_code": subject.code,
            "title": subject.title,
            "channel": desk.channel.value,
            "desk_code": desk.code,
            "collecting_division": desk.division,
            "deciding_division": cat.departments[items[0].department].division,
            "applicant_type": "person",
            "applicant_name": rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.randint(1, 2))),
            "applicant_id": _id_number(rng, born),
            "agent_name": None,
            "agent_id": None,
            "form": plan.forms.get(subject.code, {}),
            "state": "draft",
            "resume_state": None,
            "source_ref": None,
            "signal": None,
            "accepted_on": None,
            "due_date": None,
            "due_provisional": False,
            "paused_since": None,
            "paused_workdays": 0,
            "chain_head": "",
            "created_at": self.t,
            "updated_at": self.t,
            "origin_partner": None,
            "origin_number": None,
            "origin_desk": None,
        }
        self.deficiencies: list[dict[str, Any]] = []
        self.rating: dict[str, Any] | None = None

    # -- time
    def _at(self, day: date, lo: float = 8.5, hi: float = 17.5) -> datetime:
        return datetime.combine(day, time()) + timedelta(seconds=self.rng.uniform(lo * 3600, hi * 3600)) - BJ

    def day(self) -> date:
        return (self.t + BJ).date()

    def later(self, minutes: float) -> None:
        self.go(self.t + timedelta(minutes=minutes))

    def after_workdays(self, n: int) -> None:
        """To office hours `n` working days after the current day (n=0: later the same day)."""
        if n == 0:
            self.later(self.rng.uniform(5, 120))
            return
        self.go(max(self.t, self._at(_add_workdays(self.cal, self.day(), n))))

    def go(self, t: datetime) -> None:
        if t > self.now:
            self.sweeps_until(self.now)
            raise Stop
        self.sweeps_until(t)
        self.t = t

    # -- the hourly deadline sweep (`hub run deadlines`), as it would have run meanwhile
    def card(self, today: date) -> str | None:
        """`hub.timelimits.signal` on the simulated row."""
        a = self.app
        if a["state"] not in CLOCKED_STATES or a["accepted_on"] is None or a["due_date"] is None:
            return None
        if (a["paused_since"] or today) > a["due_date"]:
            return "red"
        if a["paused_since"] is not None:
            return "paused"
        promised = max(p["promised_days"] for p in self.parts) + a["paused_workdays"]
        if (
            promised > self.yellow
            and today <= a["due_date"]
            and _workdays_between(self.cal, today, a["due_date"]) <= self.yellow
        ):
            return "yellow"
        return "green"

    def sweeps_until(self, t: datetime) -> None:
        """Cards the sweep would have given between now and `t`: the first sweep of each day
        (00:05 Beijing) is where a card changes; yellow and red changes are `warning` events."""
        a = self.app
        if a["state"] not in CLOCKED_STATES or a["due_date"] is None:
            return
        first, last = (self.t + BJ - SWEEP_AT).date() + timedelta(days=1), (t + BJ - SWEEP_AT).date()
        if first > last:
            return
        due = a["due_date"]
        days = {first, due + timedelta(days=1)}  # the card can change only on these days …
        d = due
        while d > first and _workdays_between(self.cal, d, due) <= self.yellow:
            d -= timedelta(days=1)
        days.add(d + timedelta(days=1))  # … and when the last working days before the due date begin
        for day in sorted(x for x in days if first <= x <= last):
            value = self.card(day)
            if value == a["signal"]:
                continue
            if value in ("yellow", "red"):
                self.t = min(
                    t, datetime.combine(day, time()) + SWEEP_AT - BJ + timedelta(seconds=self.rng.uniform(0, 30))
                )
                reason = "已超期 (overdue)" if value == "red" else "即将到期 (due soon)"
                self.event("warning", ("deadline-sweep", "system"), None, None, reason=reason,
                           data={"level": value, "due_date": due.isoformat()})  # fmt: skip
            a["signal"] = value

    # -- events
    def event(self, action: str, who: tuple, frm: str | None, to: str | None, **kw: Any) -> None:
        name, role = who[0], who[1]
        place = who[2] if len(who) > 2 else None
        self.events.append(
            {
                "part_id": kw.get("part_id"),
                "action": action,
                "from_state": frm,
                "to_state": to,
                "actor": name,
                "role": role,
                "desk": place,
                "at": self.t,
                "reason": kw.get("reason"),
                "data": kw.get("data") or {},
            }
        )

    def move(self, action: str, who: tuple, to: str, **kw: Any) -> None:
        frm, self.app["state"] = self.app["state"], to
        self.event(action, who, frm, to, **kw)

    def officer(self, department: str) -> tuple:
        name, role = self.officers[department]
        return (name, role, department)

    # -- the life
    def live(self) -> None:
        with contextlib.suppress(Stop):
            self._live()
            self.sweeps_until(self.now)
        self.first_card()
        self.app["updated_at"] = self.events[-1]["at"]

    def first_card(self) -> None:
        """A case accepted since the day's first sweep has no card yet; the hourly sweep gives it
        its first one (green, or paused) at its next run — as of `now`, where the fill stops."""
        a = self.app
        if a["state"] not in CLOCKED_STATES or a["due_date"] is None or a["signal"] is not None:
            return
        value = self.card((self.now + BJ).date())
        if value in ("yellow", "red"):
            self.t = max(self.t, self.now - timedelta(seconds=30))
            reason = "已超期 (overdue)" if value == "red" else "即将到期 (due soon)"
            self.event("warning", ("deadline-sweep", "system"), None, None, reason=reason,
                       data={"level": value, "due_date": a["due_date"].isoformat()})  # fmt: skip
        a["signal"] = value

    def _live(self) -> None:
        rng, app = self.rng, self.app
        self.event("create", self.front, None, "draft", data={"channel": app["channel"], "materials": []})
        self.move("submit", self.front, "received")
        deferrable = [m.name for i in self.items for m in i.materials if m.deferrable]
        commitment = None
        if app["channel"] in ("bank", "enclave", "township"):
            self.later(rng.uniform(2, 20))
            data: dict[str, Any] = {"checklist": ["身份证件已核对"], "note": None}
            if deferrable and rng.random() < 0.15:
                commitment = _add_workdays(self.cal, self.day(), rng.randint(5, 15))
                data["commitment_due"] = commitment.isoformat()
            self.move("pre_review", self.front, "pre_reviewed", data=data)
        lead = self.officer(self.items[0].department)
        if rng.random() < 0.04:  # 补正 before 受理 (no clock runs yet)
            self.after_workdays(rng.randint(0, 2))
            back = app["state"]
            app["resume_state"] = back
            self.move("request_supplement", lead, "supplement_requested", reason=rng.choice(SUPPLEMENT_REASONS),
                      data={"clock_stopped": False})  # fmt: skip
            if rng.random() < 0.1:
                return
            self.after_workdays(rng.randint(1, 8))
            app["resume_state"] = None
            self.move("resume", self.front, back, data={"clock_stood_workdays": 0, "due_date": None})
        r = rng.random()
        if r < 0.025:  # nobody ever accepted it: waits in the inbox
            return
        self.after_workdays(rng.choice((0, 0, 0, 0, 1, 1, 2, 3)))
        if r < 0.06:
            self.move("reject", lead, "rejected", reason=rng.choice(REJECT_REASONS))
            return self.after_end()
        if r < 0.08:
            self.withdraw()
            return self.after_end()
        self.accept(commitment, deferrable)
        self.review()
        self.after_end()

    def accept(self, commitment: date | None, deferrable: list[str]) -> None:
        app, rng = self.app, self.rng
        app["accepted_on"] = self.day()
        self.recompute_due()
        data: dict[str, Any] = {"due_date": app["due_date"].isoformat(), "due_provisional": False}
        if commitment is not None:
            data |= {"tolerant": True, "missing": deferrable[:1], "commitment_due": commitment.isoformat()}
            closed = self._at(_add_workdays(self.cal, self.day(), rng.randint(1, 12)))
            self.deficiencies.append(
                {
                    "application_id": app["id"],
                    "material": deferrable[0],
                    "due_date": commitment,
                    "created_at": self.t,
                    "closed_at": closed if closed <= self.now and rng.random() < 0.85 else None,
                    "closed_by_sha256": None,
                }
            )
            if self.deficiencies[-1]["closed_at"] is None:
                pass
            else:
                self.deficiencies[-1]["closed_by_sha256"] = secrets.token_hex(32)
        self.move("accept", self.officer(self.items[0].department), "accepted", data=data)

    def recompute_due(self) -> None:
        app = self.app
        for p in self.parts:
            if p["due_date"] is not None and p["state"] in ("approved", "denied", "withdrawn"):
                continue
            p["due_date"] = _add_workdays(self.cal, app["accepted_on"], p["promised_days"] + app["paused_workdays"])
        app["due_date"] = max(p["due_date"] for p in self.parts)

    def review(self) -> None:
        rng, app = self.rng, self.app
        stalled = rng.random() < 0.03  # an officer sits on it: overdue and open
        for k, p in enumerate(self.parts):
            self.after_workdays(rng.choice((0, 0, 1)) if k == 0 else 0)
            self.part_move(p, "start_review", "in_review")
            if app["state"] == "accepted":
                self.move("start", ("hub", "system"), "in_review")
        if rng.random() < 0.09:  # 补正 during review: the clock stops
            self.after_workdays(rng.randint(0, 3))
            app["resume_state"], app["paused_since"] = "in_review", self.day()
            self.move("request_supplement", self.officer(self.parts[0]["department_code"]), "supplement_requested",
                      reason=rng.choice(SUPPLEMENT_REASONS), data={"clock_stopped": True})  # fmt: skip
            if rng.random() < 0.07:
                return
            self.after_workdays(rng.randint(1, 10))
            stood = max(_workdays_between(self.cal, app["paused_since"], self.day()), 0)
            app["paused_workdays"] += stood
            app["paused_since"], app["resume_state"] = None, None
            self.recompute_due()
            self.move("resume", self.front, "in_review",
                      data={"clock_stood_workdays": stood, "due_date": app["due_date"].isoformat()})  # fmt: skip
        if stalled:
            return
        if rng.random() < 0.01:
            self.withdraw()
            return
        start = self.day()
        for p in sorted(self.parts, key=lambda p: p["promised_days"]):
            promised = p["promised_days"] + app["paused_workdays"]
            late = rng.random() < 0.08
            share = rng.uniform(1.1, 2.5) if late else rng.uniform(0.1, 0.95)
            n = round(promised * share) + (rng.randint(1, 5) if late and promised == 0 else 0)
            target = _add_workdays(self.cal, app["accepted_on"], n)
            if target > start:
                self.go(max(self.t, self._at(target)))
            else:
                self.later(rng.uniform(5, 90))
            deny = rng.random() < 0.05
            self.part_move(p, "deny" if deny else "approve", "denied" if deny else "approved",
                           reason=rng.choice(DENY_REASONS) if deny else None)  # fmt: skip
            p["decided_at"] = self.t
        states = {p["state"] for p in self.parts}
        outcome = "approved" if states == {"approved"} else "denied" if states == {"denied"} else "partial"
        self.move("decide", ("hub", "system"), "decided", data={
            "outcome": outcome, "parts": {p["item_code"]: p["state"] for p in self.parts},
            "on_time": self.day() <= app["due_date"]})  # fmt: skip
        if rng.random() < 0.02:  # decided, never issued: waits in 待出件
            return
        self.after_workdays(rng.choice((0, 0, 1, 2, 3)))
        self.move("issue", self.officer(self.parts[0]["department_code"]), "issued")
        if rng.random() < 0.03:  # the result was never collected: waits at the desk (待领取)
            return
        self.after_workdays(rng.choice((0, 1, 2, 3, 5)))
        self.move("deliver", self.front, "delivered")

    def part_move(self, p: dict[str, Any], action: str, to: str, reason: str | None = None) -> None:
        frm, p["state"] = p["state"], to
        self.event(action, self.officer(p["department_code"]), frm, to, part_id=p["id"], reason=reason,
                   data={"item": p["item_code"], "department": p["department_code"]})  # fmt: skip

    def withdraw(self) -> None:
        self.later(self.rng.uniform(10, 600))
        self.app["paused_since"] = None
        gone = [p for p in self.parts if p["state"] in ("pending", "in_review")]
        for p in gone:
            p["state"] = "withdrawn"
        self.move("withdraw", self.front, "withdrawn", reason=self.rng.choice(WITHDRAW_REASONS),
                  data={"parts_withdrawn": [p["item_code"] for p in gone]})  # fmt: skip

    def after_end(self) -> None:
        """好差评: a share of finished applications is rated; bad ratings open a follow-up."""
        rng = self.rng
        if rng.random() > 0.35:
            return
        self.after_workdays(rng.randint(0, 3))
        level = rng.choices((5, 4, 3, 2, 1), weights=(60, 24, 8, 5, 3))[0]
        comment = rng.choice(BAD_COMMENTS if level <= 2 else GOOD_COMMENTS)
        from hub.ratings import FOLLOW_UP_WORKDAYS, LEVEL_ZH

        due = _add_workdays(self.cal, self.day(), FOLLOW_UP_WORKDAYS) if level <= 2 else None
        data: dict[str, Any] = {"level": level, "level_zh": LEVEL_ZH[level], "comment": comment}
        if due:
            data |= {"follow_up_due": due.isoformat(), "follow_up_due_provisional": False}
        self.event("rate", ("申请人", "system"), None, None, data=data)
        self.rating = {
            "id": self.rating_id(),
            "application_id": self.app["id"],
            "level": level,
            "comment": comment,
            "rated_at": self.t,
            "follow_up_due": due,
            "follow_up_closed_at": None,
            "follow_up_by": None,
            "follow_up_response": None,
        }
        if due is None or rng.random() < 0.2:
            return
        self.after_workdays(rng.randint(2, 22))
        response = "已核实情况，已向申请人说明并整改窗口告知流程。"
        self.rating |= {"follow_up_closed_at": self.t, "follow_up_by": "督查员周", "follow_up_response": response}
        self.event("follow_up_closed", ("督查员周", "supervisor", None), None, None, reason=response,
                   data={"rating_id": self.rating["id"], "level": level, "due": due.isoformat(), "late": self.day() > due})  # fmt: skip


def generate(plan: Plan, n: int, now: datetime, seed: int = 21, start_id: int = 1) -> Iterator[dict[str, list]]:
    """Chunks of rows, table by table: applications, parts, events, deficiencies, ratings."""
    from hub.events import GENESIS, chain

    rng = random.Random(seed)
    counters: Counter[str] = Counter()
    ratings = iter(range(1, n + 1))

    def seq_of(division: str, day: date) -> str:
        key = f"{division}-{day:%Y%m%d}"
        counters[key] += 1
        return f"{key}-{counters[key]:05d}"

    rows: dict[str, list] = {"applications": [], "application_parts": [], "events": [], "deficiencies": [],
                             "ratings": []}  # fmt: skip
    for k in range(n):
        life = Life(plan, rng, now, start_id + k, seq_of, ratings.__next__)
        life.live()
        app = life.app
        app["chain_head"] = chain(app["number"], life.events, GENESIS, 0)
        for ev in life.events:
            ev["application_id"] = app["id"]
        rows["applications"].append(app)
        rows["application_parts"].extend(life.parts)
        rows["events"].extend(life.events)
        rows["deficiencies"].extend(life.deficiencies)
        if life.rating:
            rows["ratings"].append(life.rating)
        if len(rows["applications"]) >= CHUNK or k == n - 1:
            yield rows
            rows = {t: [] for t in rows}
    yield {"counters": [{"name": f"application:{key[:6]}:{key[7:]}", "value": v} for key, v in counters.items()]}


def write_rows(conn: Any, chunk: dict[str, list]) -> None:
    """Append a chunk: COPY on PostgreSQL (ids as given for applications), inserts elsewhere."""
    from sqlalchemy import insert

    from hub.hashchain import ENCODER
    from hub.storage.tables import Base

    pg = conn.dialect.name == "postgresql"
    for name, rows in chunk.items():
        if not rows:
            continue
        table = Base.metadata.tables[name]
        if not pg:
            conn.execute(insert(table), rows)
            continue
        cols = [c.name for c in table.columns if c.name in rows[0]]
        json_cols = {c.name for c in table.columns if c.type.__class__.__name__ == "JSON"}
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(f"COPY {name} ({', '.join(cols)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row([ENCODER.encode(r[c]) if c in json_cols else r[c] for c in cols])


def fill(hub: Any, n: int, now: datetime | None = None, seed: int = 21, progress: bool = False) -> dict[str, int]:
    """Fill the hub's (empty) database with `n` simulated applications; returns row counts."""
    from sqlalchemy import text

    now = (now or datetime.now(UTC)).replace(tzinfo=None)
    plan = Plan.of(hub)
    counts: Counter[str] = Counter()
    started = clock.monotonic()
    for chunk in generate(plan, n, now, seed):
        with hub.engine.begin() as conn:
            write_rows(conn, chunk)
        counts.update({t: len(r) for t, r in chunk.items()})
        if progress and "applications" in chunk:
            rate = counts["applications"] / (clock.monotonic() - started)
            print(f"  {counts['applications']:>9,} applications, {counts['events']:>10,} events  ({rate:,.0f}/s)",
                  file=sys.stderr, flush=True)  # fmt: skip
    with hub.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            for t in ("applications", "events", "deficiencies", "ratings"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT max(id) FROM {t}))"))
    if hub.engine.dialect.name == "postgresql":
        with hub.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    return dict(counts)


# ---------------------------------------------------------------- the hub process and its users


def hub_env(home: Path, db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return env | {"HUB_HOME": str(home), "HUB_DATABASE_URL": db_url, "PYTHONPATH": str(REPO)}


def sa_url(db: str) -> str:
    return f"{PG.replace('postgresql://', 'postgresql+psycopg://', 1)}/{db}"


def run_hub(env: dict[str, str], *args: str, extra: dict[str, str] | None = None) -> str:
    out = subprocess.run([str(BIN / "hub"), *args], env={**env, **(extra or {})}, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"hub {' '.join(args)}: {out.stderr[-2000:] or out.stdout[-2000:]}")
    return out.stdout


def make_home(home: Path, db: str) -> dict[str, str]:
    import psycopg

    if home.exists():
        shutil.rmtree(home)
    home.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(BIN / "hub"), "init", str(home)], check=True, capture_output=True)
    (home / "hub.db").unlink(missing_ok=True)
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')
    env = hub_env(home, sa_url(db))
    run_hub(env, "db", "upgrade")
    return env


USERS = {  # username: role, place option
    "bench-boss": ("supervisor", None),
    "bench-teller": ("teller", ("--desk", "bank-xiahong")),
    "bench-officer": ("officer", None),  # department: the busiest, chosen when made
    "bench-ops": ("ops", None),
}


def make_users(env: dict[str, str], home: Path, department: str) -> dict[str, str]:
    """The bench's accounts (once per home); their passwords, kept in the home."""
    kept = home / "bench-users.json"
    if kept.exists():
        return json.loads(kept.read_text())
    passwords = {u: secrets.token_urlsafe(12) for u in USERS}
    files = {}
    for u, pw in passwords.items():
        files[u] = home / f".{u}.pw"
        files[u].write_text(pw)
    for u, (role, place) in USERS.items():
        args = ["users", "add", u, "--name", f"压测{role}", "--role", role, "--password-file", str(files[u])]
        if role == "officer":
            place = ("--department", department)
        args += list(place or ())
        if u != "bench-boss":
            args += ["--approver", "bench-boss", "--approver-password-file", str(files["bench-boss"])]
        run_hub(env, *args)
    kept.write_text(json.dumps(passwords))
    return passwords


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log: Path

    @classmethod
    def start(cls, env: dict[str, str], cmd: list[str], log: Path) -> Server:
        port = free_port()
        out = open(log, "wb")  # noqa: SIM115 (kept open for the server's lifetime)
        proc = subprocess.Popen([*cmd, "serve", "--port", str(port)], env=env, cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip
        server = cls(proc, f"http://127.0.0.1:{port}", log)
        import httpx

        deadline = clock.monotonic() + 90
        while clock.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"hub serve exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(server.url + "/healthz", timeout=2, trust_env=False).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            clock.sleep(0.2)
        server.stop()
        raise RuntimeError("hub serve did not answer /healthz within 90 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def login(url: str, username: str, password: str) -> Any:
    """A client logged in through the real login form (its CSRF cookie and field)."""
    import httpx

    c = httpx.Client(base_url=url, timeout=120, trust_env=False)
    page = c.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    if token is None:
        raise RuntimeError("no CSRF field on /login")
    r = c.post("/login", data={"username": username, "password": password, "csrf_token": token.group(1), "next": "/"})
    if r.status_code not in (302, 303):
        raise RuntimeError(f"login {username}: HTTP {r.status_code}")
    return c


# ---------------------------------------------------------------- pages, SQL capture and replay


@dataclass
class Page:
    name: str
    user: str | None  # None: no login (/metrics from this machine)
    path: str
    note: str = ""
    times: list[float] = field(default_factory=list)
    sql: list[tuple[str, Any]] = field(default_factory=list)
    sql_times: list[float] = field(default_factory=list)
    status: int = 0
    final: str = ""
    size: int = 0


def pages(inbox: str = "/inbox") -> list[Page]:
    return [
        Page("officer inbox", "bench-officer", inbox),
        Page("teller to-do (GET /)", "bench-teller", "/"),
        Page("application list (teller)", "bench-teller", "/applications"),
        Page("application list (officer)", "bench-officer", "/applications"),
        Page("dashboard month", "bench-boss", "/dashboard?period=month"),
        Page("dashboard year", "bench-boss", "/dashboard?period=year"),
        Page("dashboard CSV year", "bench-boss", "/dashboard.csv?period=year"),
        Page("follow-ups", "bench-boss", "/follow-ups"),
        Page("/metrics", None, "/metrics"),
    ]


def capture_serve() -> None:
    """`hub serve` with every statement recorded (for the bare-SQL replay): HUB_BENCH_SQL_LOG
    names the file; each record is a pickle of (statement, parameters)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    out = open(os.environ["HUB_BENCH_SQL_LOG"], "ab")  # noqa: SIM115 (the process's lifetime)
    lock = threading.Lock()

    @event.listens_for(Engine, "before_cursor_execute")
    def record(conn, cursor, statement, parameters, context, executemany):
        try:
            blob = pickle.dumps((statement, parameters, executemany))
        except Exception:  # a parameter that does not pickle: the statement alone
            blob = pickle.dumps((statement, None, executemany))
        with lock:
            out.write(blob)
            out.flush()

    from hub.cli import main

    sys.argv = ["hub", *sys.argv[2:]]
    main()


def read_capture(path: Path, offset: int) -> tuple[list[tuple[str, Any, bool]], int]:
    out = []
    with open(path, "rb") as f:
        f.seek(offset)
        while True:
            try:
                out.append(pickle.load(f))
            except EOFError:
                break
        return out, f.tell()


def replay(conn: Any, statements: list[tuple[str, Any, bool]]) -> float:
    """The page's statements on one connection, in one transaction rolled back; seconds."""
    started = clock.perf_counter()
    with conn.cursor() as cur:
        for stmt, params, many in statements:
            if stmt.strip().upper() in ("BEGIN", "COMMIT", "ROLLBACK"):
                continue
            if many:
                cur.executemany(stmt, params)
            else:
                cur.execute(stmt, params or None)
                if cur.description:
                    cur.fetchall()
    elapsed = clock.perf_counter() - started
    conn.rollback()
    return elapsed


def busiest_department(db: str) -> str:
    import psycopg

    with psycopg.connect(f"{PG}/{db}") as conn:
        return conn.execute(
            "SELECT p.department_code FROM application_parts p JOIN applications a ON a.id = p.application_id "
            "WHERE a.state IN ('received','pre_reviewed','accepted','in_review','supplement_requested') "
            "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()[0]


# an officer's work: to accept, in review, 补正 (clock stopped), decided and waiting to be issued
INBOX_STATES = frozenset({"received", "pre_reviewed", "accepted", "in_review", "supplement_requested", "decided"})
NUMBER = re.compile(r"\b\d{6}-\d{8}-\d{5}\b")


def inbox_check(db: str, department: str, html: str) -> str:
    """Is the inbox's first page the most urgent cases? Overdue here means what the officer can
    act on: accepted or in review, the department's part still open, due before today. The page
    must hold only the officer's work, and its overdue rows must be the most overdue ones (no
    overdue case left off that is due earlier than one shown), and if the department has a
    page of them, nothing else. 补正 cases whose card went red before the clock stopped are
    counted beside (the applicant, not the officer, has to act)."""
    import psycopg

    shown = list(dict.fromkeys(NUMBER.findall(html)))
    if not shown:
        return "FAIL: no application numbers on the inbox page"
    today = (datetime.now(UTC) + BJ).date()
    mine = (
        "EXISTS (SELECT 1 FROM application_parts p WHERE p.application_id = a.id AND p.department_code = %s "
        "AND p.state IN ('pending','in_review'))"
    )
    with psycopg.connect(f"{PG}/{db}") as conn:
        rows = dict(conn.execute("SELECT number, state FROM applications WHERE number = ANY(%s)", (shown,)).fetchall())
        overdue = conn.execute(
            "SELECT a.number, a.due_date FROM applications a WHERE a.state IN ('accepted','in_review') "
            f"AND a.due_date < %s AND {mine} ORDER BY a.due_date, a.id",
            (today, department),
        ).fetchall()
        red_paused = conn.execute(
            "SELECT count(*) FROM applications a WHERE a.state = 'supplement_requested' "
            f"AND a.due_date < a.paused_since AND {mine}",
            (department,),
        ).fetchone()[0]
    closed = [n for n in shown if rows.get(n) not in INBOX_STATES]
    due_of = dict(overdue)
    on_page = [due_of[n] for n in shown if n in due_of]
    left_off = [(n, d) for n, d in overdue if n not in set(shown)]
    problems = []
    if closed:
        problems.append(
            f"{len(closed)} of {len(shown)} rows are not an officer's work (e.g. {closed[0]} {rows.get(closed[0])})"
        )
    if len(overdue) >= len(shown) and len(on_page) < len(shown):
        problems.append(f"only {len(on_page)} of {len(shown)} rows overdue though the department has {len(overdue)}")
    if left_off and (not on_page or left_off[0][1] < max(on_page)):
        problems.append(f"overdue case {left_off[0][0]} (due {left_off[0][1]}) is not on the page")
    verdict = "OK" if not problems else "FAIL: " + "; ".join(problems)
    return (
        f"{verdict} ({len(shown)} rows shown, {len(on_page)} overdue; the department has {len(overdue)} overdue "
        f"in review or accepted, and {red_paused} 补正 cases that went red before the clock stopped)"
    )


def time_pages(
    env: dict[str, str], home: Path, db: str, runs: int, work: Path, inbox: str = "/inbox"
) -> tuple[list[Page], str]:
    import psycopg

    department = busiest_department(db)
    passwords = make_users(env, home, department)
    plist = pages(inbox)
    # 1. the statements each page runs, from the capturing server
    capture = work / "statements.bin"
    capture.unlink(missing_ok=True)
    cenv = {**env, "HUB_BENCH_SQL_LOG": str(capture)}
    server = Server.start(cenv, [sys.executable, str(Path(__file__).resolve()), "capture-serve"], work / "capture.log")
    try:
        clients = {u: login(server.url, u, pw) for u, pw in passwords.items()}
        import httpx

        anon = httpx.Client(base_url=server.url, timeout=120, trust_env=False)
        for p in plist:
            c = clients[p.user] if p.user else anon
            c.get(p.path, follow_redirects=True)  # warm
            offset = capture.stat().st_size if capture.exists() else 0
            c.get(p.path, follow_redirects=True)
            p.sql = read_capture(capture, offset)[0]
    finally:
        server.stop()
    # 2. the real server, timed
    server = Server.start(env, [str(BIN / "hub")], work / "serve.log")
    inbox_verdict = "not checked"
    try:
        clients = {u: login(server.url, u, pw) for u, pw in passwords.items()}
        import httpx

        anon = httpx.Client(base_url=server.url, timeout=120, trust_env=False)
        for p in plist:
            c = clients[p.user] if p.user else anon
            r = c.get(p.path, follow_redirects=True)
            p.status, p.final, p.size = r.status_code, r.url.path, len(r.content)
            if p.name.startswith("teller to-do") and p.final == "/intake":
                p.note = "no to-do page: GET / redirects to the item grid /intake"
            if p.path == "/metrics":
                up = re.search(r"^hub_database_up (\S+)", r.text, re.M)
                p.note = f"hub_database_up {up.group(1) if up else '?'}"
            if p.name == "officer inbox" and r.status_code == 200:
                inbox_verdict = inbox_check(db, department, r.text)
        print(f"  timing {len(plist)} pages ×{runs}", file=sys.stderr, flush=True)
        for _ in range(runs):
            for p in plist:
                c = clients[p.user] if p.user else anon
                started = clock.perf_counter()
                c.get(p.path, follow_redirects=True)
                p.times.append(clock.perf_counter() - started)
    finally:
        server.stop()
    # 3. the same statements, bare
    print(f"  replaying their SQL ×{runs}", file=sys.stderr, flush=True)
    with psycopg.connect(f"{PG}/{db}") as conn:
        for p in plist:
            if not p.sql:
                continue
            replay(conn, p.sql)  # warm
            p.sql_times = [replay(conn, p.sql) for _ in range(runs)]
    return plist, f"inbox of {department}: {inbox_verdict}"


def sweep(env: dict[str, str], *args: str) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit code) of one `hub …` child process."""
    started = clock.perf_counter()
    proc = subprocess.Popen([str(BIN / "hub"), *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return clock.perf_counter() - started, usage.ru_maxrss / 1024, proc.returncode


def time_sweeps(env: dict[str, str], runs: int) -> list[str]:
    lines = []
    for label, args in (("hub run deadlines", ("run", "deadlines")), ("hub apps warnings", ("apps", "warnings"))):
        print(f"  timing {label} ×{runs}", file=sys.stderr, flush=True)
        results = [sweep(env, *args) for _ in range(runs)]
        walls = [w for w, _, _ in results]
        lines.append(
            f"{label:<20} median {statistics.median(walls):7.2f} s of {runs} (first {walls[0]:.2f}, "
            f"min {min(walls):.2f}, max {max(walls):.2f}), peak RSS max {max(r for _, r, _ in results):6.0f} MiB, "
            f"exit codes {sorted({c for *_, c in results})}"
        )
    return lines


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.1f}" if values else "     n/a"


def report(plist: list[Page], inbox: str, sweeps: list[str], meta: str) -> str:
    out = [meta, "", f"{'page':<30} {'HTTP':>4} {'median ms':>9} {'bare SQL ms':>11} {'stmts':>5}  note"]
    for p in plist:
        out.append(f"{p.name:<30} {p.status:>4} {ms(p.times):>9} {ms(p.sql_times):>11} {len(p.sql):>5}  "
                   f"{p.note}{' (ended at ' + p.final + ')' if p.final and p.final != p.path.split('?')[0] else ''}")  # fmt: skip
    out += ["", inbox, "", *sweeps]
    return "\n".join(out)


def describe(db: str) -> str:
    import psycopg

    with psycopg.connect(f"{PG}/{db}") as conn:
        q = lambda s: conn.execute(s).fetchone()[0]  # noqa: E731
        states = conn.execute("SELECT state, count(*) FROM applications GROUP BY 1 ORDER BY 2 DESC").fetchall()
        return (
            f"{q('SELECT count(*) FROM applications'):,} applications, {q('SELECT count(*) FROM events'):,} events, "
            f"{q('SELECT count(*) FROM application_parts'):,} parts, {q('SELECT count(*) FROM ratings'):,} ratings "
            f"({q('SELECT count(*) FROM ratings WHERE follow_up_due IS NOT NULL'):,} bad), "
            f"{q('SELECT count(*) FROM deficiencies'):,} 容缺 commitments; database size "
            f"{q(f'SELECT pg_size_pretty(pg_database_size({chr(39)}{db}{chr(39)}))')}\n"
            f"states: {', '.join(f'{s} {n:,}' for s, n in states)}\n"
            f"open and overdue (due before today, Beijing): "
            f"{q(OVERDUE_SQL):,}"
        )


OVERDUE_SQL = (
    "SELECT count(*) FROM applications WHERE state IN ('accepted','in_review','supplement_requested') "
    "AND due_date < (now() AT TIME ZONE 'Asia/Shanghai')::date"
)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "capture-serve":
        capture_serve()
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("all", "fill", "time", "sweeps"))
    ap.add_argument("--apps", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sweep-runs", type=int, default=5)
    ap.add_argument("--db", default=DB)
    ap.add_argument("--home", type=Path, default=HOME)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--inbox-path", default="/inbox", help="the inbox page (tab) that lists the most urgent cases")
    ap.add_argument(
        "--after-fill",
        action="append",
        default=[],
        metavar="'HUB ARGS'",
        help="a hub command to run after the fill (repeatable), e.g. one that rebuilds rollups from the events",
    )
    ap.add_argument("--out", type=Path, help="also write the report here")
    args = ap.parse_args()
    work = args.home.parent
    env = hub_env(args.home, sa_url(args.db))
    lines: list[str] = []
    if args.what in ("all", "fill"):
        from hub.context import Hub

        env = make_home(args.home, args.db)
        hub = Hub.open(args.home, database_url=sa_url(args.db), connectors=False)
        started = clock.monotonic()
        counts = fill(hub, args.apps, seed=args.seed, progress=True)
        hub.close()
        for command in args.after_fill:  # e.g. a rebuild of figures kept as rollups (COPY bypasses the hub)
            run_hub(env, *shlex.split(command))
        lines.append(f"fill: {counts.get('applications', 0):,} applications in {clock.monotonic() - started:.0f} s")
        print(lines[-1], flush=True)
    meta = describe(args.db)
    print(meta, flush=True)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()  # fmt: skip
    head = f"commit {commit}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()[0]:.2f}\n{meta}"
    if args.what in ("all", "time"):
        plist, inbox = time_pages(env, args.home, args.db, args.runs, work, args.inbox_path)
        sweeps = time_sweeps(env, args.sweep_runs)
        text = report(plist, inbox, sweeps, "\n".join([head, *lines]))
    elif args.what == "sweeps":
        text = "\n".join([head, *time_sweeps(env, args.sweep_runs)])
    else:
        text = "\n".join([head, *lines])
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
