"""A sandbox of the province's public data platform's verification gateway (公共数据平台 核验接口):
网上核验 for the records the county's own department sandboxes do not hold — housing-fund
accounts, social- and medical-insurance records, birth certificates, business licences, property
ownership, marriage records. Its API is its own (not the hub's), as a real gateway's would be:

    GET  /irs/v1/apps/self                        Authorization: Bearer <token> -> {"code": "00", "data": {"appId"}}
    POST /irs/v1/verify                           {"serviceCode": KIND, "params": {"zjhm": ID, "xm": NAME}}
         -> {"code": "00", "msg": "成功", "result": {"consistent": true|false, "info": {...}}}
         -> {"code": "40", "msg": "未知服务"}       (an unknown serviceCode, HTTP 400)
    POST /irs/v1/licences                         {"zzlxdm": TYPE, "czztdm": HOLDER_ID}   (电子证照共享服务)
         -> {"code": "00", "data": {"licences": [{"zzbh", "zzmc", "czzt", "czztdm", "zzbfjg",
             "fzrq", "yxqq", "yxqz", "zzzt": "有效"|"注销"|"过期", "fddbrdm": 法定代表人证件号码}]}}
    401 {"code": "41", "msg": "令牌无效"} without a valid token.

`consistent` says whether the name matches the record held for the ID number (a record must
exist); `info` carries what the department would show a desk (no ID numbers)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# What the platform knows, by kind and ID number (fictional residents; the 公安 sandbox knows the
# same two people's households).
SAMPLE_RECORDS: dict[str, dict[str, tuple[str, dict[str, str]]]] = {
    "housing_fund_account": {
        "330329199007010137": ("陈志强", {"账户状态": "正常缴存", "缴存单位": "泰顺县某建筑有限公司"}),
    },
    "social_insurance_record": {
        "330329195003150214": ("林阿婆", {"险种": "城乡居民基本养老保险", "参保状态": "领取待遇"}),
        "330329199007010137": ("陈志强", {"险种": "企业职工基本养老保险", "参保状态": "正常参保"}),
    },
    "medical_insurance_record": {
        "330329195003150214": ("林阿婆", {"参保类型": "城乡居民医保", "参保地": "泰顺县"}),
        "330329199007010137": ("陈志强", {"参保类型": "职工医保", "参保地": "泰顺县"}),
    },
    "birth_certificate": {
        "330329199007010137": ("陈志强", {"出生医学证明编号": "Q330000001", "签发机构": "泰顺县人民医院"}),
    },
    "business_license": {
        "330329199007010137": ("陈志强", {"主体名称": "泰顺县志强农家乐", "登记状态": "存续"}),
    },
    "property_ownership": {
        "330329195003150214": (
            "林阿婆",
            {"不动产权证号": "浙(2020)泰顺县不动产权第0001234号", "坐落": "罗阳镇下洪社区"},
        ),
    },
    "marriage_record": {
        "330329199007010137": ("陈志强", {"婚姻状况": "已婚", "登记机关": "泰顺县民政局"}),
    },
}

# 电子证照共享服务平台: licences other departments issued, as the platform lists them (GB/T 36903
# field names in pinyin initials). 陈志强's 个体工商户 holds a business licence; 林阿婆 a property
# certificate; the rest are there for the refusals (a cancelled and an expired licence).
ZHIQIANG_USCC = "92330329MA2K7Q8L1T"  # 泰顺县志强农家乐 (个体工商户)
ZHIQIANG_OWNER_ID = "330329199007010137"  # 陈志强, its operator (经营者): fddbrdm on its licences
SAMPLE_LICENCES: list[dict[str, str]] = [
    {
        "zzlxdm": "YYZZ",
        "zzmc": "营业执照",
        "zzbh": "330329600123456",
        "czzt": "泰顺县志强农家乐",
        "czztdm": ZHIQIANG_USCC,
        "zzbfjg": "泰顺县市场监督管理局",
        "fzrq": "2024-03-18",
        "yxqq": "2024-03-18",
        "yxqz": "",
        "zzzt": "有效",
        "fddbrdm": ZHIQIANG_OWNER_ID,
    },
    {
        "zzlxdm": "YYZZ",
        "zzmc": "营业执照",
        "zzbh": "330329600099999",
        "czzt": "泰顺县志强农家乐",
        "czztdm": ZHIQIANG_USCC,
        "zzbfjg": "泰顺县市场监督管理局",
        "fzrq": "2019-05-06",
        "yxqq": "2019-05-06",
        "yxqz": "",
        "zzzt": "注销",
        "fddbrdm": ZHIQIANG_OWNER_ID,
    },
    {
        "zzlxdm": "BDCQZS",
        "zzmc": "不动产权证书",
        "zzbh": "浙(2020)泰顺县不动产权第0001234号",
        "czzt": "林阿婆",
        "czztdm": "330329195003150214",
        "zzbfjg": "泰顺县自然资源和规划局",
        "fzrq": "2020-06-30",
        "yxqq": "2020-06-30",
        "yxqz": "",
        "zzzt": "有效",
    },
    {
        "zzlxdm": "BDCQZS",
        "zzmc": "不动产权证书",
        "zzbh": "浙(2016)泰顺县不动产权第0000321号",
        "czzt": "林阿婆",
        "czztdm": "330329195003150214",
        "zzbfjg": "泰顺县国土资源局",
        "fzrq": "2016-04-01",
        "yxqq": "2016-04-01",
        "yxqz": "2021-03-31",
        "zzzt": "过期",
    },
]

MAX_BODY = 64 * 1024


class DataSharingGateway:
    """Start with `start()`, stop with `stop()`; `url` is the gateway's root."""

    def __init__(
        self, *, token: str, port: int = 0, records: dict | None = None, licences: list[dict[str, str]] | None = None
    ):
        self.token = token
        self.records = records if records is not None else SAMPLE_RECORDS
        self.licences = licences if licences is not None else SAMPLE_LICENCES
        self.asked: list[str] = []  # serviceCodes asked, in order
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._connections: set[socket.socket] = set()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/irs/v1"

    def start(self) -> DataSharingGateway:
        self._thread = threading.Thread(target=self._server.serve_forever, name="sandbox-irs", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._connections.clear()

    def answer(self, kind: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.asked.append(kind)
        if kind not in self.records:
            return 400, {"code": "40", "msg": f"未知服务 {kind}"}
        found = self.records[kind].get(str(params.get("zjhm", "")))
        consistent = found is not None and found[0] == params.get("xm")
        info = found[1] if consistent and found else {}
        return 200, {"code": "00", "msg": "成功", "result": {"consistent": consistent, "info": info}}

    def licences_of(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        type_code, holder = str(params.get("zzlxdm", "")), str(params.get("czztdm", ""))
        with self._lock:
            self.asked.append(f"licences:{type_code}")
        if not type_code or not holder:
            return 400, {"code": "40", "msg": "缺少证照类型或持证主体代码"}
        found = [dict(x) for x in self.licences if x["zzlxdm"] == type_code and x["czztdm"] == holder]
        return 200, {"code": "00", "msg": "成功", "data": {"licences": found}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with gateway._lock:
                    gateway._connections.add(self.connection)

            def finish(self) -> None:
                with gateway._lock:
                    gateway._connections.discard(self.connection)
                super().finish()

            def log_message(self, *_args) -> None:
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                body = json.dumps(payload, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    return self._send(413, {"code": "43", "msg": "请求过大"})
                body = self.rfile.read(length) if length else b""
                if self.headers.get("Authorization") != f"Bearer {gateway.token}":
                    return self._send(401, {"code": "41", "msg": "令牌无效"})
                if (self.command, self.path) == ("GET", "/irs/v1/apps/self"):
                    return self._send(200, {"code": "00", "data": {"appId": "tongban-hub"}})
                if (self.command, self.path) == ("POST", "/irs/v1/verify"):
                    try:
                        data = json.loads(body)
                        kind, params = str(data["serviceCode"]), dict(data["params"])
                    except (ValueError, KeyError, TypeError):
                        return self._send(400, {"code": "40", "msg": "请求格式错误"})
                    return self._send(*gateway.answer(kind, params))
                if (self.command, self.path) == ("POST", "/irs/v1/licences"):
                    try:
                        data = json.loads(body)
                        if not isinstance(data, dict):
                            raise TypeError
                    except (ValueError, TypeError):
                        return self._send(400, {"code": "40", "msg": "请求格式错误"})
                    return self._send(*gateway.licences_of(data))
                return self._send(404, {"code": "44", "msg": "无此接口"})

            do_GET = do_POST = _handle

        return Handler
