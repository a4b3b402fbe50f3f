// Tongban Hub pages: live checks while a teller types (the server checks everything again),
// sha256 of each chosen file, online verification, no double submit, print.
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
  return input.closest("label, td")?.querySelector(".hint");
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

async function sha256(file) {
  if (!window.crypto?.subtle) return t("提交后显示", "shown after submitting");
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
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
    input.addEventListener("change", async () => {
      const file = input.files[0];
      const row = input.closest("tr");
      const code = row.querySelector(".sha code");
      if (!file) { code.textContent = ""; return; }
      if (file.size > Number(input.dataset.max)) {
        const mb = Math.round(input.dataset.max / 1048576);
        show(input, t(`文件超过 ${mb} MB 上限`, `larger than the ${mb} MB limit`));
        input.value = "";
        return;
      }
      show(input, "");
      code.textContent = t("计算中…", "hashing…");
      code.textContent = await sha256(file);
      const missing = row.querySelector("[data-missing]");
      if (missing) { missing.checked = false; updateCommitment(form); }
    });
  });
  form.querySelectorAll("[data-missing]").forEach((c) => c.addEventListener("change", () => updateCommitment(form)));
  form.querySelectorAll("button.verify").forEach((button) => {
    button.addEventListener("click", async () => {
      const cell = button.closest("td");
      const result = cell.querySelector(".verify-result");
      result.textContent = t("核验中…", "checking…");
      const response = await fetch("/api/v1/verifications", {
        method: "POST",
        headers: { "content-type": "application/json", "x-csrf-token": csrf(form) },
        body: JSON.stringify({
          subject: form.dataset.subject,
          material: button.dataset.material,
          id_number: form.querySelector("[name=applicant_id]").value,
          name: form.querySelector("[name=applicant_name]").value,
        }),
      });
      const body = await response.json();
      if (response.ok && body.ok) {
        cell.querySelector("input[name=verified]").value = body.ticket;
        result.textContent = t("✓ 核验一致，无需纸质材料", "✓ confirmed: no paper copy needed");
      } else {
        result.textContent = body.ok === false
          ? t("✗ 核验不一致，请收取纸质材料", "✗ not confirmed: take the paper copy")
          : (body.detail || t("核验失败", "verification failed"));
      }
    });
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
    if (submit) { submit.disabled = true; submit.textContent = t("提交中…", "Submitting…"); }
  });
  updateCommitment(form);
}

document.addEventListener("DOMContentLoaded", () => {
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
