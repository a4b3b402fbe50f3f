// 政务背包: the agent's offline kit. Views: enrol (once, logged in), unlock (PIN), the list of
// records, the intake form. Every value goes through store.js (encrypted); every check through
// forms.js (the catalogue's schema); sync through sync.js. The DOM is built with textContent only:
// names and addresses residents give are data, never markup.
import * as forms from './forms.js';
import * as store from './store.js';
import { Syncer } from './sync.js';

const $ = (sel) => document.querySelector(sel);
const VIEWS = ['loading', 'login', 'enrol', 'unlock', 'main', 'form'];
const state = { device: null, bundle: null, syncer: null, editing: null, photos: {}, signed: false };

function show(view) {
  for (const v of VIEWS) $(`#view-${v}`).hidden = v !== view;
  $('#lock').hidden = !['main', 'form'].includes(view);
}

function flash(text) {
  const el = $('#flash');
  el.textContent = text || '';
  el.hidden = !text;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function hint(name, text) {
  const h = document.querySelector(`.hint[data-for="${CSS.escape(name)}"]`);
  if (h) h.textContent = text || '';
}

function updateNet() {
  const net = $('#net');
  net.textContent = navigator.onLine ? '在线' : '离线';
  net.classList.toggle('offline', !navigator.onLine);
}

function b64(buffer) {
  const bytes = new Uint8Array(buffer);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

// ---------------------------------------------------------------- enrol and unlock

async function startEnrol() {
  let me;
  try {
    const r = await fetch('/api/v1/kit/me', { cache: 'no-store' });
    if (!r.ok) { show('login'); return; }
    me = await r.json();
  } catch {
    show('login');
    return;
  }
  if (me.role !== 'agent') { show('login'); flash('只有代办员账号可以登记政务背包。'); return; }
  $('#enrol-who').textContent = `代办员：${me.name}`;
  show('enrol');
  $('#enrol-form').onsubmit = async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const pin = f.elements.namedItem('pin').value;
    if (!/^[0-9]{6,}$/.test(pin)) { hint('enrol', '口令应为至少6位数字'); return; }
    if (pin !== f.elements.namedItem('pin2').value) { hint('enrol', '两次输入的口令不一致'); return; }
    hint('enrol', '正在登记…');
    const r = await fetch('/api/v1/kit/devices', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrf },
      body: JSON.stringify({ name: f.elements.namedItem('name').value }),
    });
    const body = await r.json();
    if (!r.ok) {
      hint('enrol', (body.errors || []).map((e) => `${e.zh} (${e.en})`).join('；') || String(body.detail));
      return;
    }
    await store.setUp(pin);
    state.device = { token: body.token, id: body.device.id, name: body.device.name };
    await store.putSecret('device', state.device);
    if (!(await refreshBundle())) { hint('enrol', '事项目录下载失败，请联网后重试'); return; }
    await openMain();
  };
}

async function refreshBundle() {
  try {
    const r = await fetch('/api/v1/kit/bundle', { headers: { authorization: `Kit ${state.device.token}` }, cache: 'no-store' });
    if (r.status === 401) {
      const body = await r.json();
      if (body.detail && body.detail.code === 'device_revoked') await revoked(body.detail);
      return false;
    }
    if (!r.ok) return false;
    state.bundle = await r.json();
    await store.putSecret('bundle', state.bundle);
    return true;
  } catch {
    return false; // offline: the bundle from last time serves
  }
}

async function revoked(detail) {
  await store.wipe();
  state.device = null; state.bundle = null;
  show('login');
  flash(`${detail.zh}（${detail.en}）。本机的政务背包数据已清除。`);
}

function startUnlock() {
  show('unlock');
  $('#unlock-form').onsubmit = async (ev) => {
    ev.preventDefault();
    try {
      await store.unlock(ev.target.elements.namedItem('pin').value);
    } catch (err) {
      hint('unlock', err.message);
      return;
    }
    ev.target.reset();
    hint('unlock', '');
    state.device = await store.getSecret('device');
    state.bundle = await store.getSecret('bundle');
    await openMain();
    if (navigator.onLine) refreshBundle();
  };
}

// ---------------------------------------------------------------- the list of records

async function openMain() {
  $('#who').textContent = `${state.bundle.agent.name} · ${state.device.name}`;
  $('#desk').textContent = `收件窗口：${state.bundle.desk.name}（${state.bundle.items.length} 个事项可上门收件）`;
  if (!state.syncer) {
    state.syncer = new Syncer({
      device: state.device,
      limits: state.bundle.limits,
      onChange: (info) => { renderRecords(); if (info.error) flash(info.error); else flash(''); },
      onRevoked: revoked,
    });
  }
  show('main');
  await renderRecords();
  state.syncer.run();
}

const STATE_ZH = { pending: '待同步', synced: '已同步', refused: '被退回，请修改后重新提交', conflict: '冲突' };

async function renderRecords() {
  if (!store.unlocked()) return;
  const list = $('#records');
  const items = await store.records();
  list.replaceChildren();
  $('#empty').hidden = items.length > 0;
  for (const r of items) {
    const li = el('li', { class: r.state, 'data-record': r.id });
    li.append(el('div', { text: `${r.title} · ${STATE_ZH[r.state] || r.state}` }));
    if (r.number) li.append(el('div', {}, '办件号 ', el('span', { class: 'number', text: r.number })));
    if (r.errors && r.errors.length) {
      const ul = el('ul', { class: 'errors' });
      for (const e of r.errors) ul.append(el('li', { text: `${e.zh} (${e.en})` }));
      li.append(ul);
      if (r.state === 'refused') {
        const fix = el('button', { type: 'button', text: '修改' });
        fix.onclick = () => openForm(r);
        li.append(fix);
      }
    }
    list.append(li);
  }
}

// ---------------------------------------------------------------- the intake form

function itemOf(code) {
  return state.bundle.items.find((i) => i.code === code);
}

function fieldInput(f, value) {
  let input;
  if (f.type === 'choice' || f.type === 'boolean') {
    input = el('select', { name: `form.${f.name}` }, el('option', { value: '', text: '请选择' }));
    const options = f.type === 'boolean' ? ['是', '否'] : f.options;
    for (const o of options) input.append(el('option', { value: o, text: o }));
  } else if (f.type === 'text') {
    input = el('textarea', { name: `form.${f.name}` });
  } else {
    input = el('input', { name: `form.${f.name}`, type: f.type === 'date' ? 'date' : 'text', autocomplete: 'off' });
    if (['integer', 'decimal', 'phone', 'id_number', 'division'].includes(f.type)) input.setAttribute('inputmode', f.type === 'decimal' ? 'decimal' : 'numeric');
  }
  if (value !== undefined && value !== null) input.value = typeof value === 'boolean' ? (value ? '是' : '否') : String(value);
  return input;
}

function renderItem(code, record) {
  const item = itemOf(code);
  const box = $('#form-fields');
  box.replaceChildren(el('legend', { text: '表单' }));
  const photos = $('#photos');
  photos.replaceChildren(el('legend', { text: '材料照片（拍照或选择图片）' }));
  state.photos = {};
  if (!item) return;
  for (const f of item.fields) {
    const label = el('label', { text: f.label + (f.required ? ' *' : '') });
    label.append(fieldInput(f, record && record.payload.form[f.name]));
    box.append(label);
    if (f.help) box.append(el('span', { class: 'help', text: f.help }));
    box.append(el('span', { class: 'hint', 'data-for': `form.${f.name}` }));
  }
  item.materials.forEach((m, i) => {
    const input = el('input', { type: 'file', accept: 'image/*', capture: 'environment', 'data-material': m.name });
    const preview = el('img', { class: 'preview', alt: `${m.name}照片预览` });
    preview.hidden = true;
    const kept = record && record.payload.photos.find((p) => p.name === m.name);
    if (kept) { state.photos[m.name] = kept; preview.src = `data:image/jpeg;base64,${kept.content_b64}`; preview.hidden = false; }
    input.onchange = async () => {
      const file = input.files[0];
      if (!file) return;
      if (file.size > state.bundle.limits.photo_bytes) { hint(`photos.${i}`, '照片超过大小上限'); return; }
      const content = b64(await file.arrayBuffer());
      state.photos[m.name] = { name: m.name, filename: file.name || `${m.name}.jpg`, content_b64: content };
      preview.src = `data:${file.type || 'image/jpeg'};base64,${content}`;
      preview.hidden = false;
      hint(`photos.${i}`, '');
    };
    const label = el('label', { text: m.name + (m.required ? ' *' : '') });
    label.append(input);
    photos.append(label, preview, el('span', { class: 'hint', 'data-for': `photos.${i}` }));
  });
}

function setUpSignature() {
  const canvas = $('#signature');
  const ctx = canvas.getContext('2d');
  ctx.lineWidth = 3; ctx.lineCap = 'round'; ctx.strokeStyle = '#111';
  let drawing = false;
  const at = (ev) => {
    const r = canvas.getBoundingClientRect();
    return [(ev.clientX - r.left) * (canvas.width / r.width), (ev.clientY - r.top) * (canvas.height / r.height)];
  };
  canvas.onpointerdown = (ev) => { drawing = true; canvas.setPointerCapture(ev.pointerId); ctx.beginPath(); ctx.moveTo(...at(ev)); };
  canvas.onpointermove = (ev) => { if (!drawing) return; ctx.lineTo(...at(ev)); ctx.stroke(); state.signed = true; };
  canvas.onpointerup = () => { drawing = false; };
  $('#clear-signature').onclick = () => { ctx.clearRect(0, 0, canvas.width, canvas.height); state.signed = false; };
}

function openForm(record) {
  state.editing = record || null;
  const f = $('#record-form');
  f.reset();
  for (const h of f.querySelectorAll('.hint')) h.textContent = '';
  const select = $('#item-select');
  select.replaceChildren(el('option', { value: '', text: '请选择事项' }));
  for (const i of state.bundle.items) select.append(el('option', { value: i.code, text: `${i.name}（${i.department}）` }));
  select.onchange = () => renderItem(select.value, null);
  const canvas = $('#signature');
  canvas.getContext('2d').clearRect(0, 0, canvas.width, canvas.height);
  state.signed = false;
  if (record) {
    select.value = record.payload.item;
    f.elements.namedItem('applicant.name').value = record.payload.applicant.name;
    f.elements.namedItem('applicant.id').value = record.payload.applicant.id;
    renderItem(record.payload.item, record);
    if (record.payload.signature_b64) {
      const img = new Image();
      img.onload = () => canvas.getContext('2d').drawImage(img, 0, 0);
      img.src = `data:image/png;base64,${record.payload.signature_b64}`;
      state.signed = true;
    }
    for (const e of record.errors || []) hint(e.field, `${e.zh} (${e.en})`);
  } else {
    renderItem('', null);
  }
  $('#form-title').textContent = record ? '修改申请' : '新建申请';
  show('form');
}

async function saveForm(ev) {
  ev.preventDefault();
  const f = ev.target;
  for (const h of f.querySelectorAll('.hint')) h.textContent = '';
  const item = itemOf(f.elements.namedItem('item').value);
  if (!item) { hint('form', '请选择办理事项'); return; }
  const raw = {};
  for (const fld of item.fields) raw[fld.name] = f.elements.namedItem(`form.${fld.name}`).value;
  const form = forms.normalize(item.fields, raw);
  const applicant = { type: 'person', name: f.elements.namedItem('applicant.name').value.trim(), id: f.elements.namedItem('applicant.id').value.normalize('NFKC').trim().toUpperCase() };
  let ok = true;
  if (!applicant.name) { hint('applicant.name', '申请人姓名为必填项'); ok = false; }
  if (!forms.idNumberOk(applicant.id)) { hint('applicant.id', '公民身份号码格式不正确或校验码错误'); ok = false; }
  const verdict = forms.check(item.schema, form);
  for (const e of verdict.errors) hint(e.field, `${e.zh} (${e.en})`);
  if (!state.signed) { hint('signature', '请申请人签名'); ok = false; }
  if (!verdict.valid || !ok) { hint('form', '请按提示修改后再保存'); return; }
  const signature = $('#signature').toDataURL('image/png').split(',')[1];
  const id = state.editing ? state.editing.id : crypto.randomUUID();
  const takenAt = new Date().toISOString();
  const payload = { id, item: item.code, applicant, form, photos: Object.values(state.photos), signature_b64: signature, taken_at: takenAt };
  await store.putRecord({ id, state: 'pending', title: `${item.name} · ${applicant.name}`, taken_at: takenAt, payload, errors: [] });
  state.editing = null;
  show('main');
  await renderRecords();
  state.syncer.run();
}

// ---------------------------------------------------------------- start

async function main() {
  updateNet();
  window.addEventListener('online', updateNet);
  window.addEventListener('offline', updateNet);
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('/kit/sw.js', { scope: '/kit/' }).catch((err) => flash(`离线功能不可用：${err.message}`));
  }
  $('#lock').onclick = () => { store.lock(); state.syncer = null; startUnlock(); };
  $('#new-record').onclick = () => openForm(null);
  $('#cancel-form').onclick = () => { state.editing = null; show('main'); };
  $('#sync-now').onclick = () => state.syncer && state.syncer.run();
  $('#record-form').onsubmit = saveForm;
  setUpSignature();
  if (await store.enrolled()) startUnlock();
  else await startEnrol();
}

main();
