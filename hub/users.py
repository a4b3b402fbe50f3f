"""People who log in (`hub users …`, the web UI): Argon2id password hashes, throttled logins,
each user bound to the desk or department they work for. What a user may see and do follows from
the `Actor` they become (see `hub.applications.scoped`)."""

from __future__ import annotations

import contextlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select

from hub import audit
from hub import text as characters
from hub.applications import Actor
from hub.context import Hub
from hub.errors import FieldError, Forbidden, HubError, InvalidInput, NotFound, Reason
from hub.lifecycle import FRONT, Role
from hub.storage.tables import User, WebSession, naive_utc

# Roles a person logs in as (applicants use the status page; `system` is for tokens and jobs).
PERSON_ROLES = (Role.teller, Role.enclave_clerk, Role.clerk, Role.agent, Role.officer, Role.supervisor, Role.ops)
ROLE_ZH = {
    "teller": "银行网点柜员",
    "enclave_clerk": "飞地窗口工作人员",
    "clerk": "综合窗口工作人员",
    "agent": "代办员",
    "officer": "县级部门审批人员",
    "supervisor": "督查管理人员",
    "ops": "运维人员",
    "system": "系统",
    "applicant": "申请人",
}
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 10
MAX_FAILURES = 5  # consecutive failed logins before the account is locked for a while
LOCKOUT = timedelta(minutes=15)
# A temporary password (set by ops) works this long: one not handed over and used in time is dead
TEMPORARY_VALID = timedelta(days=3)

# OWASP's second Argon2id profile (m=19 MiB, t=2, p=1): about 30 ms per hash on this kind of machine.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified against when the username is unknown, so both cases cost the same time.
_DUMMY_HASH = _hasher.hash("tongban-hub-no-such-user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_problem(password: str, username: str = "") -> Reason | None:
    if len(password) < MIN_PASSWORD:
        return Reason(f"密码至少{MIN_PASSWORD}位", f"at least {MIN_PASSWORD} characters")
    if username and username.lower() in password.lower():
        return Reason("密码不能包含用户名", "must not contain the username")
    if len(set(password)) < 4:
        return Reason("密码过于简单", "too simple")
    return None


@dataclass(frozen=True)
class Person:
    """A user as the rest of the hub sees them (no hash)."""

    id: int
    username: str
    display_name: str
    role: Role
    desk: str | None
    department: str | None
    disabled: bool
    must_change_password: bool = False  # logged in with a temporary password: change it first

    def actor(self) -> Actor:
        return Actor(name=self.display_name, role=self.role, desk=self.desk, department=self.department)


def _person(u) -> Person:
    return Person(
        u.id,
        u.username,
        u.display_name,
        Role(u.role),
        u.desk_code,
        u.department_code,
        u.disabled,
        bool(u.must_change_password),
    )


def temporary_password(username: str = "") -> str:
    """A random password that passes `password_problem` (shown once; the user must replace it)."""
    while True:
        candidate = secrets.token_urlsafe(12)
        if password_problem(candidate, username) is None:
            return candidate


def check_binding(hub: Hub, role: Role, desk: str | None, department: str | None) -> list[FieldError]:
    """A front-desk role needs a desk of the right channel; an officer a department; others neither."""
    errors: list[FieldError] = []
    cat = hub.catalog
    if role not in PERSON_ROLES and role is not Role.system:
        errors.append(FieldError("role", Reason(f"角色 {role.value} 不能登录", "not a role people log in as")))
    if role in FRONT or role is Role.agent:
        d = cat.desks.get(desk or "")
        if d is None:
            errors.append(FieldError("desk", Reason(f"窗口 {desk} 不存在", "unknown desk (required for this role)")))
        else:
            wanted = {
                Role.teller: {"bank"},
                Role.enclave_clerk: {"enclave"},
                Role.clerk: {"hall", "township", "online"},  # the online desk (网办) is staffed by clerks too
                Role.agent: {"hall", "township", "enclave"},  # the agent's home desk
            }[role]
            if d.channel.value not in wanted:
                errors.append(
                    FieldError("desk", Reason(f"{d.name} 不是{ROLE_ZH[role.value]}的窗口", "desk of another channel"))
                )
    elif desk:
        errors.append(FieldError("desk", Reason("该角色不绑定窗口", "this role is not bound to a desk")))
    if role is Role.officer:
        if department not in cat.departments:
            errors.append(
                FieldError("department", Reason(f"部门 {department} 不存在", "unknown department (required)"))
            )
    elif department:
        errors.append(FieldError("department", Reason("该角色不绑定部门", "this role is not bound to a department")))
    return errors


def user_problems(
    hub: Hub, username: str, display_name: str, role: Role, desk: str | None, department: str | None
) -> list[FieldError]:
    """What is wrong with a new login's fields (not its password): one rule for CLI and web."""
    errors = check_binding(hub, role, desk, department)
    if role is Role.system:
        errors.append(FieldError("role", Reason("系统请使用 API 令牌", "systems use API tokens, not logins")))
    if not USERNAME.match(username):
        errors.append(FieldError("username", Reason("用户名为2-64位小写字母、数字、. _ -", "2-64 of a-z 0-9 . _ -")))
    if not display_name.strip() or len(display_name) > 100:
        errors.append(FieldError("display_name", Reason("姓名为1-100字", "1-100 characters")))
    elif bad := characters.check("display_name", display_name):
        errors.append(bad)
    return errors


def add_user(
    hub: Hub,
    username: str,
    password: str,
    *,
    display_name: str,
    role: Role,
    desk: str | None = None,
    department: str | None = None,
    temporary: bool = False,
) -> Person:
    """A new login. `temporary`: the password was made for the user by someone else (ops), who
    must not keep a working one — the first login asks for a new password before anything else."""
    errors = user_problems(hub, username, display_name, role, desk, department)
    if problem := password_problem(password, username):
        errors.append(FieldError("password", problem))
    if errors:
        raise InvalidInput(errors)
    now = naive_utc(hub.now())
    with hub.transaction() as session:
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            raise InvalidInput.field("username", f"用户名 {username} 已存在", "username taken")
        user = User(
            username=username,
            display_name=display_name.strip(),
            role=role.value,
            desk_code=desk,
            department_code=department,
            password_hash=hash_password(password),
            disabled=False,
            failed_logins=0,
            created_at=now,
            password_changed_at=now,
            must_change_password=temporary,
        )
        session.add(user)
        session.flush()
        return _person(user)


def _user(session, username: str):
    user = session.scalars(select(User).where(User.username == username).with_for_update()).one_or_none()
    if user is None:
        raise NotFound(f"用户 {username} 不存在 (no such user)")
    return user


def set_disabled(hub: Hub, username: str, disabled: bool = True) -> Person:
    """Disable (or re-enable) a user; a disabled user's sessions end at once."""
    with hub.transaction() as session:
        user = _user(session, username)
        user.disabled = disabled
        if disabled:
            session.query(WebSession).filter(WebSession.user_id == user.id).delete()
        return _person(user)


def reset_password(hub: Hub, username: str, password: str, *, temporary: bool = False) -> Person:
    """A new password; the user's sessions end and the lockout is lifted. `temporary`: set by
    someone else, so the next login must replace it."""
    if problem := password_problem(password, username):
        raise InvalidInput([FieldError("password", problem)])
    with hub.transaction() as session:
        user = _user(session, username)
        user.password_hash = hash_password(password)
        user.password_changed_at = naive_utc(hub.now())
        user.failed_logins = 0
        user.locked_until = None
        user.must_change_password = temporary
        session.query(WebSession).filter(WebSession.user_id == user.id).delete()
        return _person(user)


def unlock(hub: Hub, username: str) -> bool:
    """Lift a lockout (too many wrong passwords) without touching the password; whether one was on.
    No approval: it gives nobody a credential, the user still needs their own password."""
    now = naive_utc(hub.now())
    with hub.transaction() as session:
        user = _user(session, username)
        was_locked = bool(user.locked_until and user.locked_until > now)
        user.locked_until = None
        user.failed_logins = 0
        return was_locked


def change_password(hub: Hub, username: str, current: str, new: str) -> Person:
    """The user replaces their own password (a temporary one, or at will): the current one must be
    right — a wrong one counts like a failed login — and the new one different and acceptable.
    Every session of the user ends (the caller opens a fresh one for whoever changed it): a
    session opened with the old password — by ops, who was shown the temporary one — must not
    live on as the user's."""
    try:
        authenticate(hub, username, current, login=False)
    except LoginRefused as exc:
        raise InvalidInput.field("current", "当前密码不正确", "the current password is wrong") from exc
    errors = []
    if problem := password_problem(new, username):
        errors.append(FieldError("new", problem))
    elif new == current:
        errors.append(FieldError("new", Reason("新密码不能与当前密码相同", "must differ from the current one")))
    if errors:
        raise InvalidInput(errors)
    with hub.transaction() as session:
        user = _user(session, username)
        user.password_hash = hash_password(new)
        user.password_changed_at = naive_utc(hub.now())
        user.must_change_password = False
        session.query(WebSession).filter(WebSession.user_id == user.id).delete()
        return _person(user)


@dataclass(frozen=True)
class Account:
    """A user as ops sees them: the person, and when they last logged in and whether they are
    locked out (and until when)."""

    person: Person
    created_at: datetime
    last_login_at: datetime | None
    locked_until: datetime | None  # only while the lockout lasts
    failed_logins: int

    @property
    def locked(self) -> bool:
        return self.locked_until is not None


def accounts_page(hub: Hub, *, q: str = "", limit: int = 100, offset: int = 0) -> tuple[list[Account], int]:
    """One page of users ordered by username (unique: a stable key), filtered in the database by
    a username or name fragment, and how many match in all."""
    now = naive_utc(hub.now())
    stmt, counted = select(User).order_by(User.username), select(func.count()).select_from(User)
    if q := q.strip()[:64]:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        match = User.username.ilike(pattern, escape="\\") | User.display_name.ilike(pattern, escape="\\")
        stmt, counted = stmt.where(match), counted.where(match)
    with hub.sessions() as session:
        total = session.scalar(counted) or 0
        rows = [
            Account(
                person=_person(u),
                created_at=u.created_at,
                last_login_at=u.last_login_at,
                locked_until=u.locked_until if u.locked_until and u.locked_until > now else None,
                failed_logins=u.failed_logins,
            )
            for u in session.scalars(stmt.limit(limit).offset(offset))
        ]
    return rows, total


def list_users(hub: Hub) -> list[Person]:
    with hub.sessions() as session:
        return [_person(u) for u in session.scalars(select(User).order_by(User.username))]


def get_person(hub: Hub, user_id: int) -> Person | None:
    with hub.sessions() as session:
        user = session.get(User, user_id)
        return _person(user) if user else None


class LoginRefused(HubError):
    """Wrong username or password, disabled, or locked: one message for all (no user probing)."""

    def __init__(self, locked: bool = False, known: bool = True):
        self.locked = locked
        # whether the username named an account: only then may the audit log keep it (people
        # type passwords into the username box; an unknown "username" may be one)
        self.known = known
        super().__init__(
            "账号已临时锁定，请15分钟后再试或联系运维人员重置 (account locked for a while)"
            if locked
            else "用户名或密码错误 (wrong username or password)"
        )


def authenticate(hub: Hub, username: str, password: str, *, login: bool = True) -> Person:
    """The person with these credentials, or LoginRefused. Counts failures per account and locks
    it after MAX_FAILURES; the counter lives in the database so every API process shares it.
    `login`: a log-in (recorded as the last one), not an approval or a password check."""
    now = naive_utc(hub.now())
    with hub.transaction() as session:
        user = session.scalars(select(User).where(User.username == username).with_for_update()).one_or_none()
        if user is None:
            with contextlib.suppress(VerificationError):
                _hasher.verify(_DUMMY_HASH, password or "-")
            raise LoginRefused(known=False)
        if user.locked_until and user.locked_until > now:
            # the same answer and cost as a wrong password: a lockout must not tell who exists
            with contextlib.suppress(VerificationError):
                _hasher.verify(_DUMMY_HASH, password or "-")
            raise LoginRefused()
        try:
            _hasher.verify(user.password_hash, password)
            stale = user.must_change_password and user.password_changed_at + TEMPORARY_VALID <= now
            ok = not user.disabled and not stale
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok:
            user.failed_logins += 1
            if user.failed_logins >= MAX_FAILURES:
                user.locked_until = now + LOCKOUT
                user.failed_logins = 0
        else:
            user.failed_logins = 0
            user.locked_until = None
            if login:  # in the row already locked and written: costs nothing more
                user.last_login_at = now
            if _hasher.check_needs_rehash(user.password_hash):
                user.password_hash = hash_password(password)
        person = _person(user)
    if not ok:
        # committed above: the failure counts even though the caller sees an exception
        raise LoginRefused()
    return person


# ---------------------------------------------------------------- 双人授权: approving desk credentials

# Roles whose credentials act on applications and see full ID numbers and materials. Whoever
# issues one (a login, an API token, a new password for such a login) could use it: so issuing
# one takes a second person who already holds that authority (docs/web.md, "Who may issue
# credentials"). Ops keeps the plumbing, never the power.
CASE_ROLES = FRONT | {Role.officer}
# Supervisors approve the above, and `system` tokens can do everything: only a supervisor approves
# those (the very first supervisor account of a hub is the one made without: someone must start).
SUPERVISOR_APPROVES = frozenset({Role.supervisor, Role.system})


class ApprovalRefused(Forbidden):
    """A credential for a case role was asked for without a valid approver; nothing was written."""

    def __init__(self, reason: Reason):
        self.errors = [FieldError("approver", reason)]
        super().__init__(f"需要授权 (approver): {reason}")


def needs_approval(hub: Hub, role: Role) -> bool:
    """Whether issuing a credential for `role` takes a second person's approval."""
    if role in CASE_ROLES or role is Role.system:
        return True
    if role is Role.supervisor:
        with hub.sessions() as session:  # bootstrap: the first supervisor account needs nobody
            return session.scalar(select(User.id).where(User.role == Role.supervisor.value).limit(1)) is not None
    return False


def approve(
    hub: Hub,
    role: Role,
    desk: str | None,
    department: str | None,
    approver: str | None,
    password: str | None,
    *,
    requester: str | None = None,
) -> Person | None:
    """The person approving a credential for `role` at `desk`/`department`, who proves it with
    their own password in the same act (as a bank supervisor authorises at a teller's terminal):
    an active user other than the requester who holds that same role at that same desk or
    department, or a supervisor (only a supervisor for supervisors and `system`). None when the
    role needs no approval; ApprovalRefused otherwise.
    A wrong password counts towards the approver's lockout like any failed login."""
    if not needs_approval(hub, role):
        return None
    if not approver or not password:
        who = (
            ("督查人员", "a supervisor")
            if role in SUPERVISOR_APPROVES
            else (
                "本窗口或本部门的同角色人员或督查人员",
                "a person of that desk or department in the same role, or a supervisor,",
            )
        )
        raise ApprovalRefused(
            Reason(
                f"{ROLE_ZH[role.value]}的账号、令牌或密码须由{who[0]}输入其用户名和密码授权",
                f"a credential for this role needs {who[1]} to approve with their username and password",
            )
        )
    if requester and approver == requester:
        raise ApprovalRefused(Reason("不能为自己授权", "the approver must be a second person"))
    try:
        person = authenticate(hub, approver, password, login=False)
    except LoginRefused:
        raise ApprovalRefused(
            Reason("授权人用户名或密码错误", "the approver's username or password is wrong")
        ) from None
    same_place = role in CASE_ROLES and person.role is role and (person.desk, person.department) == (desk, department)
    if not (same_place or person.role is Role.supervisor):
        raise ApprovalRefused(
            Reason(
                f"{person.username} 无权为该窗口或部门授权",
                "the approver has no authority over this desk or department",
            )
        )
    return person


# ---------------------------------------------------------------- issuing credentials (CLI and web alike)
# Each act: check the fields, then the approval (双人授权), then write, then audit — the same
# function whether ops clicks on /ops/users or types `hub users …` on the host.


@dataclass(frozen=True)
class Approval:
    """Who approves, with the password they typed in the same act (never stored)."""

    username: str | None = None
    password: str | None = None


NO_APPROVAL = Approval()


def _approved(hub: Hub, role: Role, desk, department, approval: Approval, requester: str | None, target: str | None):
    if requester is not None and role is Role.supervisor and not needs_approval(hub, role):
        # the first supervisor needs nobody — at the host only: made from a web page, ops would
        # hold a supervisor's login and so approve desk and department credentials alone
        raise ApprovalRefused(
            Reason(
                "第一个督查人员账号只能在服务器上用 hub users add 创建",
                "the first supervisor account is created at the host (hub users add)",
            )
        )
    approved = approve(hub, role, desk, department, approval.username, approval.password, requester=requester)
    if approved is not None and approved.username == target:
        raise ApprovalRefused(Reason("授权人不能是该账号本人", "the approver must be a second person, not the user"))
    return approved


def issue_user(
    hub: Hub,
    actor: Actor,
    *,
    username: str,
    display_name: str,
    role: Role,
    desk: str | None = None,
    department: str | None = None,
    password: str | None = None,
    approval: Approval = NO_APPROVAL,
    requester: str | None = None,
    client: str | None = None,
) -> tuple[Person, str | None]:
    """A new login, approved when its role needs it. Without `password` a temporary one is made,
    returned once (the second item) and must be changed at the first login."""
    desk, department = desk or None, department or None
    errors = user_problems(hub, username, display_name, role, desk, department)
    if password is not None and (problem := password_problem(password, username)):
        errors.append(FieldError("password", problem))
    if errors:  # before the approval: a typo must not cost the approver a password attempt
        raise InvalidInput(errors)
    approved = _approved(hub, role, desk, department, approval, requester, username)
    temporary = password is None
    secret = temporary_password(username) if temporary else password
    person = add_user(
        hub,
        username,
        secret,
        display_name=display_name,
        role=role,
        desk=desk,
        department=department,
        temporary=temporary,
    )
    audit.record(
        hub,
        actor,
        "user_add",
        target=person.username,
        client=client,
        role=person.role.value,
        place=person.desk or person.department,
        approved_by=approved.username if approved else None,
    )
    return person, secret if temporary else None


def person_named(hub: Hub, username: str) -> Person:
    with hub.sessions() as session:
        user = session.scalars(select(User).where(User.username == username)).one_or_none()
        if user is None:
            raise NotFound(f"用户 {username} 不存在 (no such user)")
        return _person(user)


def issue_password_reset(
    hub: Hub,
    actor: Actor,
    username: str,
    *,
    password: str | None = None,
    approval: Approval = NO_APPROVAL,
    requester: str | None = None,
    client: str | None = None,
) -> tuple[Person, str | None]:
    """A new password for someone else (sessions end, lockout lifted): approved for a desk or
    department user, who could otherwise be taken over. Without `password` a temporary one is
    made, returned once, and must be changed at the next login."""
    user = person_named(hub, username)
    if password is not None and (problem := password_problem(password, username)):
        raise InvalidInput([FieldError("password", problem)])
    approved = _approved(hub, user.role, user.desk, user.department, approval, requester, username)
    temporary = password is None
    secret = temporary_password(username) if temporary else password
    person = reset_password(hub, username, secret, temporary=temporary)
    audit.record(
        hub,
        actor,
        "password_reset",
        target=person.username,
        client=client,
        temporary=temporary,
        approved_by=approved.username if approved else None,
    )
    return person, secret if temporary else None


def issue_enable(
    hub: Hub,
    actor: Actor,
    username: str,
    *,
    approval: Approval = NO_APPROVAL,
    requester: str | None = None,
    client: str | None = None,
) -> Person:
    """Give a disabled login back: that is issuing it again, so it is approved like a new one."""
    user = person_named(hub, username)
    approved = _approved(hub, user.role, user.desk, user.department, approval, requester, username)
    person = set_disabled(hub, username, False)
    audit.record(
        hub, actor, "user_enabled", target=username, client=client, approved_by=approved.username if approved else None
    )
    return person


def disable_user(hub: Hub, actor: Actor, username: str, *, requester: str | None = None, client: str | None = None):
    """Take a login away at once (its sessions end). Nobody disables themselves by mistake."""
    if requester and requester == username:
        raise InvalidInput.field("username", "不能停用自己的账号", "you cannot disable your own account")
    person = set_disabled(hub, username, True)
    audit.record(hub, actor, "user_disabled", target=username, client=client)
    return person


def unlock_user(hub: Hub, actor: Actor, username: str, *, client: str | None = None) -> bool:
    was_locked = unlock(hub, username)
    audit.record(hub, actor, "user_unlocked", target=username, client=client, was_locked=was_locked)
    return was_locked
