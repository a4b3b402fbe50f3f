// Tongban Hub pages: live checks while a teller types (the server checks everything again),
// each chosen file checked for type and size, online verification with a retry, a submission
// that keeps the teller's work when it is refused, no double submit, print.
"use strict";

const WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK = "10X98765432";

const EN = document.documentElement.lang === "en";
function t(zh, en) { return EN ? en : zh; }

function fold(s) { return s.normalize("NFKC").trim().toUpperCase(); }

// GB 11643: 17 digits and a check character.
function idProblem(raw) {
  const v = fold(raw);
  if (!v) return "";
  if (!/^\d{17}[\dX]$/.test(v)) return t("身份号码应为18位（最后一位可为X）", "18 characters: 17 digits and a digit or X");
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += Number(v[i]) * WEIGHTS[i];
  if (CHECK[sum % 11] !== v[17]) return t("身份号码校验码错误，请核对", "wrong check digit: please check the number");
  return "";
}

function hintOf(input) {
  return input.closest("label:not(.file-pick), td")?.querySelector(".hint");
}

function show(input, message, good) {
  input.setAttribute("aria-invalid", message && !good ? "true" : "false");
  const hint = hintOf(input);
  if (!hint) return;
  hint.textContent = message;
  hint.classList.toggle("good", Boolean(good));
}

function checkInput(input) {
  const kind = input.dataset.check;
  if (input.required && !input.value.trim()) return show(input, t("必填", "required"));
  if (kind === "id") {
    const p = idProblem(input.value);
    return show(input, p || (input.value ? t("✓ 校验通过", "✓ valid") : ""), !p);
  }
  if (kind === "phone" && input.value && !/^1\d{10}$|^0\d{2,3}-?\d{7,8}$/.test(fold(input.value))) {
    return show(input, t("电话号码格式不正确", "not a phone number"));
  }
  show(input, "");
}

// Plain Chinese for a file's size: tellers read "1.2 MB", not a byte count.
function sizeText(bytes) {
  return bytes >= 1048576 ? `${(bytes / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1024))} KB`;
}

// The server sniffs the bytes again; this only spares the teller a round trip (and keeps the
// other files and values: a refused file clears its own input only).
function fileProblem(input, file) {
  const material = input.closest("tr")?.dataset.material || "";
  const exts = (input.dataset.exts || "").split(",").filter(Boolean);
  const ext = (file.name.includes(".") ? file.name.split(".").pop() : "").toLowerCase();
  const kinds = input.dataset.kinds || exts.join("、").toUpperCase();
  if (exts.length && !exts.includes(ext)) {
    return t(`“${material}”不接受此类文件（${file.name}）：只接受 ${kinds} 文件`,
      `“${material}”: ${file.name} is not accepted; only ${kinds} files`);
  }
  if (file.size > Number(input.dataset.max)) {
    const mb = Math.round(input.dataset.max / 1048576);
    return t(`“${material}”的文件超过 ${mb} MB 上限（${file.name}，${sizeText(file.size)}）`,
      `“${material}”: ${file.name} is larger than the ${mb} MB limit`);
  }
  if (file.size === 0) return t(`“${material}”的文件是空的（${file.name}）`, `“${material}”: ${file.name} is empty`);
  return "";
}

function csrf(form) { return form.querySelector("input[name=csrf_token]")?.value || ""; }

function updateCommitment(form) {
  const anyMissing = [...form.querySelectorAll("[data-missing]")].some((c) => c.checked);
  const box = document.getElementById("commitment");
  if (box) {
    box.classList.toggle("hidden", !anyMissing);
    box.querySelector("input").required = anyMissing;
  }
}

function setupIntake(form) {
  form.querySelectorAll("input, select, textarea").forEach((el) => {
    if (el.dataset.check || el.required) el.addEventListener("blur", () => checkInput(el));
  });
  form.querySelectorAll("input[type=file]").forEach((input) => {
    input.addEventListener("change", () => {
      const file = input.files[0];
      const row = input.closest("tr");
      const chosen = row.querySelector(".chosen");
      if (!file) { chosen.textContent = ""; return; }
      const problem = fileProblem(input, file);
      if (problem) {
        show(input, problem);
        input.value = "";  // only this file: the others and everything typed stay
        chosen.textContent = "";
        return;
      }
      show(input, "");
      chosen.textContent = `${file.name}（${sizeText(file.size)}）`;
      const missing = row.querySelector("[data-missing]");
      if (missing) { missing.checked = false; updateCommitment(form); }
    });
  });
  form.querySelectorAll("[data-missing]").forEach((c) => c.addEventListener("change", () => updateCommitment(form)));
  form.querySelectorAll("button.verify").forEach((button) => {
    button.addEventListener("click", () => verifyOnline(form, button));
  });
  form.querySelectorAll("button.licence-lookup").forEach((button) => {
    button.addEventListener("click", () => lookupLicences(form, button));
  });
  form.addEventListener("submit", (event) => {
    let bad = null;
    form.querySelectorAll("[data-check], [required]").forEach((el) => {
      if (el.type === "checkbox" || el.type === "file") return;
      checkInput(el);
      if (!bad && el.getAttribute("aria-invalid") === "true") bad = el;
    });
    const unticked = [...form.querySelectorAll("input[name=checklist]")].filter((c) => !c.checked);
    if (unticked.length && !bad) {
      bad = unticked[0];
      alert(t("请完成初审核对项", "Complete the first-review checklist"));
    }
    if (bad) { event.preventDefault(); bad.focus(); return; }
    // one submission: a second click waits for the first (the server dedupes on source_ref too)
    const submit = form.querySelector("#submit");
    if (submit) { submit.dataset.label ||= submit.textContent; submit.disabled = true; submit.textContent = t("提交中…", "Submitting…"); }
    if (window.fetch && window.DOMParser) {
      event.preventDefault();
      submitInPlace(form, submit);
    }
  });
  updateCommitment(form);
}

const VERIFY_TIMEOUT_MS = 30000;  // above the verifier connections' own timeouts (10 s in the samples)

// 网上核验: the department's answer, or a plain Chinese error and a 重试 button — never a page
// left saying "核验中…" (the network can fail, the hub can time out, a proxy can answer HTML).
async function verifyOnline(form, button) {
  const cell = button.closest("td");
  const result = cell.querySelector(".verify-result");
  const label = button.dataset.label || (button.dataset.label = button.textContent);
  const name = form.querySelector("[name=applicant_name]").value.trim();
  const id = form.querySelector("[name=applicant_id]");
  if (!name || !id.value.trim() || idProblem(id.value)) {
    result.textContent = t("请先填写申请人姓名和正确的身份号码，再核验", "Enter the applicant's name and a valid ID number first");
    result.className = "verify-result bad";
    return;
  }
  button.disabled = true;
  result.textContent = t("核验中…", "checking…");
  result.className = "verify-result";
  const failed = (message) => {
    result.textContent = message;
    result.className = "verify-result bad";
    button.textContent = t("重试", "Retry");
    button.disabled = false;
  };
  let response, body;
  try {
    response = await fetch("/api/v1/verifications", {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf(form) },
      body: JSON.stringify({ subject: form.dataset.subject, material: button.dataset.material, id_number: id.value, name }),
      signal: AbortSignal.timeout(VERIFY_TIMEOUT_MS),
    });
  } catch (err) {
    const timedOut = err && (err.name === "TimeoutError" || err.name === "AbortError");
    return failed(timedOut
      ? t(`核验超时（${VERIFY_TIMEOUT_MS / 1000} 秒无应答），请点“重试”，或收取纸质材料`, "The check timed out: retry, or take the paper copy")
      : t("网络连接失败，核验未完成，请检查网络后点“重试”，或收取纸质材料", "The network failed: retry, or take the paper copy"));
  }
  try { body = await response.json(); } catch { body = null; }
  if (response.ok && body && body.ok) {
    cell.querySelector("input[name=verified]").value = body.ticket;
    result.textContent = t("✓ 核验一致，无需纸质材料", "✓ confirmed: no paper copy needed");
    result.className = "verify-result good";
    button.textContent = label;
    button.disabled = false;
    return;
  }
  if (response.ok && body && body.ok === false) {
    cell.querySelector("input[name=verified]").value = "";
    result.textContent = t("✗ 核验不一致，请收取纸质材料", "✗ not confirmed: take the paper copy");
    result.className = "verify-result bad";
    button.textContent = label;
    button.disabled = false;
    return;
  }
  const named = body && Array.isArray(body.errors) && body.errors.length
    ? body.errors.map((e) => (EN ? e.en : e.zh)).join("；") : "";
  if (response.status === 401 || response.status === 403) {
    return failed(t("登录已过期或无权核验，请重新登录后重试", "Your login expired or lacks the right: log in again"));
  }
  failed(named || t("核验系统暂时无法连接，请点“重试”，或收取纸质材料", "The verifier is unavailable: retry, or take the paper copy"));
}

// 查询电子证照: the applicant's licences for one material (ours and the department's), each a
// choice with number, issuer, validity and status; picking a valid one attaches it by reference
// (the hidden `licence` input), no file. Built with textContent only: the data is never markup.
async function lookupLicences(form, button) {
  const cell = button.closest("td");
  const list = cell.querySelector(".licence-list");
  const chosen = cell.querySelector(".licence-chosen");
  const hidden = cell.querySelector("input[name=licence]");
  const id = form.querySelector("[name=applicant_id]");
  const name = form.querySelector("[name=applicant_name]");
  const say = (message, good) => { chosen.textContent = message; chosen.className = `licence-chosen ${good ? "good" : "bad"}`; };
  if (!id.value.trim() || idProblem(id.value)) return say(t("请先填写正确的申请人身份号码，再查询", "Enter a valid applicant ID number first"));
  // the holder's name must be the applicant's: an ID alone never turns into a name and licences
  if (!name || !name.value.trim()) return say(t("请先填写申请人姓名，再查询", "Enter the applicant's name first"));
  const extra = {};
  form.querySelectorAll("input[name^=f_]").forEach((el) => { if (el.value.trim()) extra[el.name.slice(2)] = el.value.trim(); });
  button.disabled = true;
  say(t("查询中…", "looking up…"), true);
  list.replaceChildren();
  let response, body;
  try {
    response = await fetch("/api/v1/licence-lookups", {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf(form) },
      body: JSON.stringify({ subject: form.dataset.subject, material: button.dataset.material, applicant_id: id.value, applicant_name: name.value, form: extra }),
      signal: AbortSignal.timeout(VERIFY_TIMEOUT_MS),
    });
    body = await response.json();
  } catch {
    button.disabled = false;
    return say(t("查询失败，请重试，或收取纸质材料", "The lookup failed: retry, or take the paper copy"));
  }
  button.disabled = false;
  if (!response.ok) {
    const named = body && Array.isArray(body.errors) ? body.errors.map((e) => (EN ? e.en : e.zh)).join("；") : "";
    return say(named || t("查询失败，请重试，或收取纸质材料", "The lookup failed: retry, or take the paper copy"));
  }
  (body.problems || []).forEach((p) => { const li = document.createElement("p"); li.className = "bad"; li.textContent = p; list.append(li); });
  if (!body.licences.length) return say(t("未查到申请人的此类电子证照，请收取纸质材料", "No such licence found: take the paper copy"));
  say(t("请选择一个有效的电子证照", "Choose a valid licence"), true);
  body.licences.forEach((lic, i) => {
    const label = document.createElement("label");
    label.className = `check licence${lic.usable ? "" : " unusable"}`;
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = `pick_${button.dataset.material}`;
    radio.value = String(i);
    radio.disabled = !lic.usable;
    const until = lic.valid_until ? t(`有效期至 ${lic.valid_until}`, `valid until ${lic.valid_until}`) : t("长期有效", "no expiry");
    label.append(radio, ` ${lic.type_name || lic.type_code} ${lic.number} · ${lic.holder_name} · ${lic.issuer} · ${until} · ${lic.status_zh} · ${lic.source_zh}`);
    radio.addEventListener("change", () => {
      hidden.value = JSON.stringify({ material: button.dataset.material, number: lic.number, source: lic.source });
      say(t(`✓ 已选电子证照 ${lic.number}，无需纸质材料`, `✓ licence ${lic.number} attached: no paper copy needed`), true);
      const missing = cell.querySelector("[data-missing]");
      if (missing) { missing.checked = false; updateCommitment(form); }
    });
    list.append(label);
  });
}

// The form is sent from the page itself, so a refused submission (a file type, a missing
// field) keeps every chosen file and typed value in place: only the errors are swapped in.
async function submitInPlace(form, submit) {
  const again = () => { if (submit) { submit.disabled = false; submit.textContent = submit.dataset.label; } };
  let response;
  try {
    response = await fetch(form.action || location.href, { method: "POST", body: new FormData(form), credentials: "same-origin" });
  } catch {
    showErrors(form, null, t("网络连接失败，未能提交。已填写的内容和文件都还在，请检查网络后再次提交。",
      "The network failed: nothing was sent. Your entries are kept; submit again."));
    return again();
  }
  if (response.redirected || (response.ok && new URL(response.url).pathname !== location.pathname)) {
    location.assign(response.url);  // the receipt
    return;
  }
  const html = await response.text();
  const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("errors");
  const why = response.status === 413
    ? t("上传的文件合计过大，未能提交。已填写的内容和文件都还在，请换用较小的文件后再提交。",
      "The files are too large in total: nothing was sent. Your entries are kept.")
    : t(`提交未成功（${response.status}），已填写的内容和文件都还在，请再次提交。`,
      `Not submitted (${response.status}); your entries are kept.`);
  showErrors(form, fresh, fresh ? "" : why);
  // a file the server refused is cleared; the rest stay chosen
  (fresh?.dataset.files || "").split("\n").filter(Boolean).forEach((name) => {
    form.querySelectorAll("input[type=file]").forEach((input) => {
      if (input.files[0]?.name === name) {
        input.value = "";
        input.closest("tr").querySelector(".chosen").textContent = "";
        show(input, t("此文件未被接受，请重新选择", "this file was refused: choose another"));
      }
    });
  });
  again();
}

function showErrors(form, fresh, message) {
  let box = document.getElementById("errors");
  if (!box) {
    box = document.createElement("div");
    box.id = "errors";
    form.parentNode.insertBefore(box, form);
  }
  if (fresh) {
    box.replaceWith(fresh);
    box = fresh;
  } else {
    box.className = "card error";
    box.setAttribute("role", "alert");
    box.textContent = message;
  }
  box.setAttribute("tabindex", "-1");
  box.scrollIntoView({ block: "start" });
  box.focus();
}

// Remote signing (the video plugin): a desk's pages say when an officer has started a session
// for one of its applications. A cheap poll (one indexed query); without the plugin the
// endpoint is absent and the poll stops.
const ALERT_EVERY_MS = 10000;

async function pollDeskAlerts(box) {
  if (!document.hidden) {
    let list;
    try {
      const response = await fetch(box.dataset.src, { credentials: "same-origin", headers: { accept: "application/json" } });
      if (response.status === 404 || response.status === 401 || response.status === 403) return;  // no plugin, or logged out
      list = response.ok ? await response.json() : null;
    } catch {
      list = null;  // the network: try again at the next turn
    }
    if (Array.isArray(list)) {
      const shown = list.filter((a) => a.page !== location.pathname);
      box.replaceChildren(...shown.map((a) => {
        const line = document.createElement("div");
        line.className = "signing-started";
        line.textContent = t(`远程面签已开始 — 办件号 ${a.application}（${a.title}）`, `Remote signing started: ${a.application} (${a.title})`);
        const link = document.createElement("a");
        link.href = a.page;
        link.textContent = t("进入面签", "Join");
        line.append(link);
        return line;
      }));
      box.hidden = shown.length === 0;
    }
  }
  setTimeout(() => pollDeskAlerts(box), ALERT_EVERY_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  const alerts = document.getElementById("desk-alert");
  if (alerts) pollDeskAlerts(alerts);
  const form = document.getElementById("intake");
  if (form) setupIntake(form);
  document.querySelectorAll("[data-print]").forEach((b) => b.addEventListener("click", () => window.print()));
  setupDecision();
  document.querySelectorAll("form.action, form.attach").forEach((f) =>
    f.addEventListener("submit", (event) => {
      if (event.defaultPrevented) return; // held for a confirmation (setupDecision)
      f.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    }),
  );
});

// ---- decision: the application page (irreversible actions ask first; 常用语 insert a reason)
function setupDecision() {
  const dialog = document.getElementById("confirm-dialog");
  document.querySelectorAll("form.action[data-confirm]").forEach((form) => {
    // registered before the button-disabling listener, so a held submit leaves the buttons alone
    form.addEventListener("submit", (event) => {
      const confirmed = form.querySelector("input[name=confirm]");
      if (confirmed.value === "1") return;
      if (!dialog || typeof dialog.showModal !== "function") return; // the server asks instead
      event.preventDefault();
      dialog.querySelector(".message").textContent = form.dataset.confirm;
      dialog.returnValue = "";
      dialog.onclose = () => {
        if (dialog.returnValue !== "ok") return;
        confirmed.value = "1";
        form.requestSubmit();
      };
      dialog.showModal();
      dialog.querySelector("button.cancel").focus(); // Enter on an open dialog cancels
    });
  });
  document.querySelectorAll("button.phrase").forEach((button) => {
    button.addEventListener("click", () => {
      const box = button.closest("form").querySelector("textarea[name=reason]");
      if (!box) return;
      const sep = box.value && !box.value.endsWith("\n") ? "；" : "";
      box.value += sep + button.dataset.phrase;
      box.focus();
    });
  });
}
