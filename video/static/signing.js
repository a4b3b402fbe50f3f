// Remote signing page (desk and officer): camera and microphone to the hub over WebRTC, the
// other side's picture back, the session's steps polled from /api/v1/signing/{id}.
"use strict";

(() => {
  const root = document.getElementById("signing");
  if (!root) return;
  const id = root.dataset.session;
  const role = root.dataset.role;
  const csrf = root.dataset.csrf;
  const EN = document.documentElement.lang === "en";
  const t = (zh, en) => (EN ? en : zh);
  const $ = (sel) => root.querySelector(sel);
  let pc = null;
  let stream = null;
  let state = null;
  let busy = false;

  async function api(path, body) {
    const res = await fetch(`/api/v1/signing/${id}${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      const detail = (data.errors || []).map((e) => e.zh).join("；") || data.detail || res.statusText;
      throw new Error(detail);
    }
    return data;
  }

  function say(message, error) {
    $(error ? "#error" : "#status").textContent = message;
    if (!error) $("#error").textContent = "";
  }

  // ---------------------------------------------------------------- media

  async function iceComplete(peer) {
    // the hub (aiortc) does not take trickled candidates: send the offer with all of them
    if (peer.iceGatheringState === "complete") return;
    await new Promise((resolve) => {
      const done = () => peer.iceGatheringState === "complete" && resolve();
      peer.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 3000);
    });
  }

  async function connect() {
    if (pc) pc.close();
    pc = new RTCPeerConnection({ iceServers: [] });
    const remote = new MediaStream();
    $("#remote").srcObject = remote;
    pc.addEventListener("track", (e) => remote.addTrack(e.track));
    pc.addEventListener("connectionstatechange", () => {
      if (["failed", "disconnected"].includes(pc.connectionState) && state && state.state === "open") {
        say(t("连接中断，正在重新连接……", "Connection lost, reconnecting…"));
        setTimeout(() => connect().catch((e) => say(e.message, true)), 1500);
      }
    });
    for (const track of stream.getTracks()) pc.addTrack(track, stream);
    await pc.setLocalDescription(await pc.createOffer());
    await iceComplete(pc);
    const answer = await api("/offer", { sdp: pc.localDescription.sdp, type: "offer" });
    await pc.setRemoteDescription(answer);
  }

  async function startMedia() {
    const button = $("#start-media");
    button.disabled = true;
    const checks = { camera: false, microphone: false, detail: {} };
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { width: 640, height: 480, frameRate: 15 },
        audio: true,
      });
      checks.camera = stream.getVideoTracks().length > 0;
      checks.microphone = stream.getAudioTracks().length > 0;
      checks.detail = { camera: stream.getVideoTracks()[0]?.label || "", microphone: stream.getAudioTracks()[0]?.label || "" };
      $("#local").srcObject = stream;
      await connect();
      state = await api("/preflight", checks);
      render();
    } catch (e) {
      button.disabled = false;
      say(t("设备或连接失败：", "Devices or connection failed: ") + e.message, true);
    }
  }

  // ---------------------------------------------------------------- signature pad

  function pad() {
    const canvas = $("#pad");
    if (!canvas) return;
    const ctx = canvas.getContext("2d");
    ctx.lineWidth = 3;
    ctx.lineCap = "round";
    let drawing = false;
    canvas.dataset.strokes = "0";
    const at = (e) => {
      const r = canvas.getBoundingClientRect();
      return [((e.clientX - r.left) * canvas.width) / r.width, ((e.clientY - r.top) * canvas.height) / r.height];
    };
    canvas.addEventListener("pointerdown", (e) => {
      drawing = true;
      canvas.setPointerCapture(e.pointerId);
      ctx.beginPath();
      ctx.moveTo(...at(e));
    });
    canvas.addEventListener("pointermove", (e) => {
      if (!drawing) return;
      ctx.lineTo(...at(e));
      ctx.stroke();
    });
    canvas.addEventListener("pointerup", () => {
      drawing = false;
      canvas.dataset.strokes = String(Number(canvas.dataset.strokes) + 1);
    });
    $("#clear-pad").addEventListener("click", () => {
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      canvas.dataset.strokes = "0";
    });
  }

  // ---------------------------------------------------------------- steps

  function bodyFor(act) {
    if (act === "identity") {
      const out = {};
      root.querySelectorAll('[data-panel="identity"] input[type=checkbox]').forEach((c) => (out[c.name] = c.checked));
      return out;
    }
    if (act === "signature") {
      const canvas = $("#pad");
      if (canvas.dataset.strokes === "0") throw new Error(t("请先签名", "Please sign first"));
      return { png: canvas.toDataURL("image/png") };
    }
    if (act === "otp") return { code: $("#otp-code").value.trim() };
    return {};
  }

  async function act(name) {
    if (busy) return;
    busy = true;
    try {
      state = await api(`/steps/${name}`, bodyFor(name));
      render();
    } catch (e) {
      say(e.message, true);
    } finally {
      busy = false;
    }
  }

  function readback(r) {
    const box = $("#readback");
    if (!r) return (box.textContent = "");
    const rows = [
      [t("办件编号", "Application"), r.application],
      [t("事项", "Item"), r.title],
      [t("申请人", "Applicant"), `${r.applicant.name} ${r.applicant.id}`],
      ...(r.form || []).map((f) => [f.label, f.value]),
      [t("材料", "Materials"), (r.materials || []).map((m) => m.name).join("、")],
    ];
    box.innerHTML = "";
    const dl = document.createElement("dl");
    for (const [k, v] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v;
      dl.append(dt, dd);
    }
    box.append(dl);
  }

  function render() {
    if (!state) return;
    const order = state.steps.map((s) => s.name);
    const current = state.state === "open" ? state.step : null;
    root.querySelectorAll("#steps li").forEach((li) => {
      const i = order.indexOf(li.dataset.step);
      li.classList.toggle("current", li.dataset.step === current);
      li.classList.toggle("done", state.state === "sealed" || (current && i < order.indexOf(current)));
    });
    const panel = state.state === "open" ? state.step : "ended";
    root.querySelectorAll(".panel").forEach((p) => p.classList.toggle("active", p.dataset.panel === panel));
    $("#rec").classList.toggle("hidden", !(state.joined || []).length || state.state !== "open");
    const list = $("#preflight-list");
    if (list) {
      list.innerHTML = "";
      for (const [who, zh, en] of [["desk", "窗口", "desk"], ["officer", "县级部门", "officer"]]) {
        const li = document.createElement("li");
        const ok = state.preflight[who] && state.joined.includes(who);
        li.className = ok ? "ok" : "wait";
        li.textContent = `${t(zh, en)}：${ok ? t("设备就绪，已连通", "devices ready, connected") : t("等待中", "waiting")}`;
        list.append(li);
      }
    }
    readback(state.readback);
    const confirm = $("#confirm-readback");
    if (confirm) confirm.disabled = !state.readback_shown;
    if (state.otp && $("#otp")) $("#otp").textContent = state.otp;
    if (state.state === "open") {
      say(t(`当前步骤：${state.step_zh}`, `Step: ${state.step}`) + (state.lost.length ? t("（连接中断，需重新核验身份）", " (connection lost: identity is checked again)") : ""));
    } else {
      $("#ended-title").textContent = state.state === "sealed" ? t("面签完成，证据已封存", "Signed; the evidence is sealed") : t("面签已终止", "The session was ended");
      $("#ended-detail").textContent = (state.end_reason || "") + (state.manifest_sha256 ? ` · manifest sha256 ${state.manifest_sha256}` : "");
      say("");
      if (stream) stream.getTracks().forEach((tr) => tr.stop());
      if (pc) pc.close();
    }
  }

  async function poll() {
    try {
      state = await api("");
      render();
    } catch (e) {
      say(e.message, true);
    }
    if (!state || state.state === "open") setTimeout(poll, 1000);
  }

  $("#start-media").addEventListener("click", startMedia);
  root.querySelectorAll("[data-act]").forEach((b) => b.addEventListener("click", () => act(b.dataset.act)));
  $("#abort").addEventListener("click", async () => {
    const reason = window.prompt(t("请填写终止原因", "Why is the session ended?"));
    if (!reason) return;
    try {
      state = await api("/steps/abort", { reason });
      render();
    } catch (e) {
      say(e.message, true);
    }
  });
  pad();
  poll();
})();
