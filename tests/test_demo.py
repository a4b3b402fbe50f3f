"""The main job (`make demo`): a fresh home, sample applications walked through the life cycle,
with the sandbox 医保 system answering over loopback as `make demo` runs it."""

import os
import re
import socket
import subprocess
import sys
import time

import httpx
import yaml


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_runs_on_a_fresh_home_with_real_department_traffic(tmp_path):
    home = tmp_path / "demo"
    subprocess.run([sys.executable, "-m", "hub", "init", str(home)], check=True, capture_output=True)
    port = _free_port()
    conn = home / "connections" / "yibao-rest.yaml"
    conf = yaml.safe_load(conn.read_text(encoding="utf-8"))
    conf["config"]["base_url"] = f"http://127.0.0.1:{port}/api"
    conn.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    soap_port, sftp_port = _free_port(), _free_port()
    conn = home / "connections" / "gongan-soap.yaml"
    conf = yaml.safe_load(conn.read_text(encoding="utf-8"))
    conf["config"]["wsdl"] = f"http://127.0.0.1:{soap_port}/gongan?wsdl"
    conn.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    # the data platform's gateway too: on its default port (8706) it met another sandbox, e.g.
    # test_prodlike's, running at the same time (another pytest-xdist worker, another test run)
    irs_port = _free_port()
    for name in ("irs-verify", "irs-licences"):
        conn = home / "connections" / f"{name}.yaml"
        conf = yaml.safe_load(conn.read_text(encoding="utf-8"))
        conf["config"]["base_url"] = f"http://127.0.0.1:{irs_port}/irs/v1"
        conn.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    # and the sandbox identity service (网办, step ⑨), 8707 by default
    oidc_port = _free_port()
    settings = yaml.safe_load((home / "hub.yaml").read_text(encoding="utf-8"))
    for provider in settings["identity_providers"]:
        provider["config"]["issuer"] = f"http://127.0.0.1:{oidc_port}"
    (home / "hub.yaml").write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    env = {**os.environ, "HUB_SANDBOX_TOKEN": "demo-test-token"}
    sandbox = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hub",
            "--home",
            str(home),
            "sandbox",
            "run",
            "--port",
            str(port),
            "--soap-port",
            str(soap_port),
            "--sftp-port",
            str(sftp_port),
            "--sftp-dir",
            str(tmp_path / "sftp"),
            "--decide-after",
            "0.1",
            "--bank-port",
            str(_free_port()),
            "--bank-dir",
            str(tmp_path / "bank"),
            "--enclave-port",
            str(_free_port()),
            "--enclave-dir",
            str(tmp_path / "enclave"),
            "--irs-port",
            str(irs_port),
            "--oidc-port",
            str(oidc_port),
            "--sample-batches",
            "0",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # the demo gives the sandbox departments a few seconds to answer (as `make demo` starts them
    # beside it); on a busy machine their start takes longer: begin when they listen
    deadline = time.monotonic() + 120
    while not _listening(port) or not _listening(soap_port):
        assert sandbox.poll() is None, sandbox.stderr.read()
        assert time.monotonic() < deadline, "the sandbox departments did not start listening"
        time.sleep(0.1)
    web_port, fuding_port = _free_port(), _free_port()
    # 跨省通办 as `make demo` sets it up: our key, the 福鼎 partner hub paired with us, serving
    hub_cli = [sys.executable, "-m", "hub", "--home", str(home)]
    subprocess.run([*hub_cli, "partners", "keygen"], check=True, capture_output=True)
    subprocess.run(
        [
            *hub_cli,
            *("sandbox", "partner-home", str(tmp_path / "fuding")),
            *("--our-url", f"http://127.0.0.1:{web_port}", "--partner-url", f"http://127.0.0.1:{fuding_port}"),
        ],
        check=True,
        capture_output=True,
    )
    fuding_cli = [sys.executable, "-m", "hub", "--home", str(tmp_path / "fuding")]
    subprocess.run([*fuding_cli, "db", "upgrade"], check=True, capture_output=True)
    fuding = subprocess.Popen(
        [*fuding_cli, "serve", "--port", str(fuding_port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    demo = subprocess.Popen(
        [sys.executable, "-m", "hub", "--home", str(home), "demo", "--port", str(web_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", "HUB_DEMO_PARTNER_HOME": str(tmp_path / "fuding")},
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the walk-through, then the accounts, then it serves
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "http://127.0.0.1:" in line:
                break
        out = "".join(lines)
        assert demo.poll() is None, demo.stderr.read()
        # the UI it serves takes a login with a printed demo account
        password = re.search(r"wangfang\s*│\s*(\S+)\s*│", out).group(1)
        with httpx.Client(base_url=f"http://127.0.0.1:{web_port}", timeout=10, follow_redirects=True) as web:
            for _ in range(100):
                try:
                    page = web.get("/login")
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            login = web.post("/login", data={"username": "wangfang", "password": password, "csrf_token": token})
            assert login.status_code == 200 and "下洪社区农商银行网点" in login.text
            assert "老年人优待证" in web.get("/applications").text  # the walk-through's applications
    finally:
        demo.terminate()
        demo.wait(timeout=10)
        sandbox.terminate()
        sandbox.wait(timeout=10)
        fuding.terminate()
        fuding.wait(timeout=10)
    for role in ("teller", "enclave_clerk", "officer", "supervisor", "ops"):
        assert role in out, role
    for needle in (
        "下洪社区农商银行网点",
        "330105→330329",
        "310115→330329",
        "partial",
        "2027-01-05*",
        "校验码错误",
        "cannot deliver",
        "对方编号 YB-000001",
        "1 parts decided",
        "医保办理结果.pdf",
        # 跨省通办: collected here, decided in 福鼎, the result back in our chain; both logs verify
        "330329→350982",
        "已出件，结果 老年人优待证.pdf",
        "泰顺消息日志",
        "福鼎消息日志",
        # 无纸化: identity verified online, the business licence by reference, nothing uploaded
        "网上核验 办税人员居民身份证 (gongan-soap): 一致",
        "选用 330329600123456（泰顺县市场监督管理局，有效，来源 浙江省电子证照共享服务平台（沙箱））",
        "未收取任何纸质材料（无纸化）",
    ):
        assert needle in out, f"{needle!r} is not in the demo's output:\n{out}"
    assert any("发票领用" in row and "│ 无纸化" in row and "已送达" in row for row in out.splitlines()), out
    # ⑩ every step's notice sealed and checked; the approved 老年人优待证 has its 电子证照
    sealed = re.search(r"sealed notices: (\d+) 份，校验通过 (\d+) 份", out)
    assert sealed and int(sealed.group(1)) >= 10 and sealed.group(1) == sealed.group(2), out
    section = out.split("⑩", 1)[1]
    assert all(kind in section for kind in ("收件凭证", "受理通知书", "补正告知书", "准予决定书", "不予决定书")), out
    assert re.search(r"电子证照 老年人优待证 \S+（泰顺县民政局，持证人 林\*+）印章有效 ✓", out), out
    assert "✗" not in out  # every event chain verifies
    assert sandbox.poll() is not None  # the sandbox was stopped, not left running
