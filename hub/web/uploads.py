"""Multipart bodies read as they stream in. Form fields are kept (small and bounded); files go
straight into the material store's staging area, hashed on the way, so a 20 MB scan is never
held in memory and its bytes are copied once. (Starlette's parser keeps files in memory up to
1 MB, then in a temporary file; the API then read them back into memory and the store wrote
them again.) A file's bytes are kept as views of the request's own chunks until a worker thread
writes and hashes them, a megabyte at a time: hashing and the kernel's copy then run beside the
event loop, and the loop copies nothing."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from hub.errors import InvalidInput
from hub.materials import MaterialStore, Staged, Staging

FLUSH = 1024 * 1024  # bytes of a file held (as views) before a worker thread writes them


@dataclass
class FilePart:
    field: str
    filename: str
    staged: Staged


@dataclass
class Body:
    """A multipart body: its fields in order, and its files (staged in the store)."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[FilePart] = field(default_factory=list)

    def get(self, name: str, default: str = "") -> str:
        return next((v for k, v in self.fields if k == name), default)

    def getlist(self, name: str) -> list[str]:
        return [v for k, v in self.fields if k == name]

    def files_of(self, name: str) -> list[FilePart]:
        return [f for f in self.files if f.field == name]

    def discard(self) -> None:
        """Remove the staged files nobody adopted (call when the request is done, always). An
        adopted file was renamed into the store: its staging name is gone already."""
        for f in self.files:
            with contextlib.suppress(OSError):
                f.staged.discard()


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    views: list[memoryview] = field(default_factory=list)  # a field's value, or a file's unwritten bytes
    pending: int = 0  # bytes in `views`
    staging: Staging | None = None
    ended: bool = False

    def take(self) -> list[memoryview]:
        views, self.views, self.pending = self.views, [], 0
        return views


async def read_multipart(
    request: Request,
    store: MaterialStore,
    *,
    max_files: int = 30,
    max_fields: int = 100,
    max_field_bytes: int = 256 * 1024,
) -> Body:
    """Read a multipart/form-data request body. Bad framing, too many parts or an over-long
    field are InvalidInput naming what was wrong; files over the store's size limit are staged
    cut off (`Staged.size` says how much arrived) for the caller to refuse by name."""
    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise InvalidInput.field(
            "content-type", "请以 multipart/form-data 提交", "expected multipart/form-data with a boundary"
        )
    body = Body()
    parts: list[_Part] = []
    header = [b"", b""]
    current = _Part()

    def on_part_begin() -> None:
        nonlocal current
        current = _Part()
        parts.append(current)

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def on_header_end() -> None:
        current.headers[header[0].lower()] = header[1]
        header[0], header[1] = b"", b""

    def on_headers_finished() -> None:
        _, options = parse_options_header(current.headers.get(b"content-disposition"))
        if b"name" not in options:
            raise InvalidInput.field("content-disposition", "上传内容缺少字段名", "a part without a name")
        current.name = _text(options[b"name"], "content-disposition")
        if b"filename" in options:
            if sum(1 for p in parts if p.filename is not None) >= max_files:
                raise InvalidInput.field("files", f"一次最多上传{max_files}个文件", "too many files")
            current.filename = _text(options[b"filename"], f"{current.name} (filename)")
            current.staging = store.stage()
        elif sum(1 for p in parts if p.filename is None) > max_fields:
            raise InvalidInput.field("fields", "表单字段过多", "too many form fields")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        current.views.append(memoryview(data)[start:end])  # the chunk is immutable bytes: no copy
        current.pending += end - start
        if current.staging is None and current.pending > max_field_bytes:
            raise InvalidInput.field(current.name, "字段内容过长", f"field longer than {max_field_bytes} bytes")

    def on_part_end() -> None:
        current.ended = True

    parser = MultipartParser(
        params[b"boundary"],
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    done = 0  # parts before this one are handed over to `body`
    try:
        async for chunk in request.stream():
            try:
                parser.write(chunk)
            except MultipartParseError:
                raise InvalidInput.field("body", "上传内容格式错误", "malformed multipart body") from None
            for part in parts[done:]:
                if part.staging is not None and part.ended:
                    if not part.filename and not part.pending and not part.staging.size:
                        part.staging = None  # a file input left empty in a browser form: nothing to keep
                    else:
                        staged = await run_in_threadpool(_finish, part.staging, part.take())
                        part.staging = None
                        body.files.append(FilePart(part.name, _safe_name(part.filename or "", len(body.files)), staged))
                elif part.staging is not None and part.pending >= FLUSH:
                    await run_in_threadpool(_write, part.staging, part.take())
                elif part.ended:
                    body.fields.append((part.name, _text(b"".join(part.take()), part.name)))
                if part.ended and part is parts[done]:
                    done += 1
        parser.finalize()
        if done != len(parts):
            raise InvalidInput.field("body", "上传内容不完整", "multipart body ended early")
    except BaseException:
        for part in parts:
            if part.staging is not None:
                part.staging.discard()  # never raises
        body.discard()
        raise
    return body


def _write(staging: Staging, views: list[memoryview]) -> None:
    for view in views:
        staging.write(view)


def _finish(staging: Staging, views: list[memoryview]) -> Staged:
    _write(staging, views)
    return staging.finish()


def _text(raw: bytes, field_name: str) -> str:
    """A part's name or value as UTF-8; anything else is refused by name, not guessed at (a GBK
    body from an old county system would otherwise be stored as replacement characters)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput.field(field_name, "内容不是 UTF-8 编码", "not UTF-8") from None


# control characters (NUL breaks PostgreSQL text) and bidirectional overrides (which make
# "gpj.exe" read as "exe.jpg") have no place in a file name
_UNSAFE = dict.fromkeys(
    [*range(0x20), *range(0x7F, 0xA0), 0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)


def _safe_name(filename: str, i: int) -> str:
    """The file's own name, without any directory a browser or client put in front, and without
    characters that could hide what it is."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].translate(_UNSAFE).strip()
    return name[:255] or f"file-{i}"
