// The catalogue's rules in the kit: the JSON Schema the hub generates per item
// (hub/catalog/jsonschema.py), checked with the vendored @cfworker/json-schema (no eval: it runs
// under the CSP), plus the two check-digit formats. `normalize` gives a form the shape the schema
// describes, as hub.catalog.jsonschema.normalize does in Python.
import { format } from './vendor/json-schema/format.js';
import { Validator } from './vendor/json-schema/validator.js';

const CODES = new Set(['phone', 'id_number', 'uscc', 'division', 'integer', 'decimal', 'date']);
const TRUE = new Set(['true', '1', 'yes', '是', 'y']);
const FALSE = new Set(['false', '0', 'no', '否', 'n']);
const INTEGER = /^[+-]?[0-9]+$/;
const NUMBER = /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

// GB 11643: 17 digits, a real date of birth (1900 .. today), the check character
const ID_WEIGHTS = Array.from({ length: 17 }, (_, i) => 2 ** (17 - i) % 11);
const ID_CHECK = '10X98765432';
export function idNumberOk(value) {
  const v = value.toUpperCase();
  if (!/^[0-9]{17}[0-9X]$/.test(v)) return false;
  const y = Number(v.slice(6, 10)); const m = Number(v.slice(10, 12)); const d = Number(v.slice(12, 14));
  const born = new Date(Date.UTC(y, m - 1, d));
  if (born.getUTCFullYear() !== y || born.getUTCMonth() !== m - 1 || born.getUTCDate() !== d) return false;
  const now = new Date();
  if (y < 1900 || y * 10000 + m * 100 + d > now.getFullYear() * 10000 + (now.getMonth() + 1) * 100 + now.getDate()) return false;
  let total = 0;
  for (let i = 0; i < 17; i++) total += Number(v[i]) * ID_WEIGHTS[i];
  return ID_CHECK[total % 11] === v[17];
}

// GB 32100: 31 characters (no I, O, S, V, Z), the check character
const USCC_CHARS = '0123456789ABCDEFGHJKLMNPQRTUWXY';
const USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
export function usccOk(value) {
  const v = value.toUpperCase();
  if (v.length !== 18 || [...v].some((c) => !USCC_CHARS.includes(c))) return false;
  let total = 0;
  for (let i = 0; i < 17; i++) total += USCC_CHARS.indexOf(v[i]) * USCC_WEIGHTS[i];
  return USCC_CHARS[(31 - (total % 31)) % 31] === v[17];
}

format['id-number'] = idNumberOk;
format.uscc = usccOk;

/** A form in its normal shape (texts trimmed, codes folded, numbers and yes/no typed, blanks out). */
export function normalize(fields, data) {
  const known = new Map(fields.map((f) => [f.name, f]));
  const out = {};
  for (const [name, value] of Object.entries(data)) {
    if (value === null || value === undefined) continue;
    if (typeof value !== 'string') { out[name] = value; continue; }
    const t = known.has(name) ? known.get(name).type : 'string';
    let v = CODES.has(t) ? value.normalize('NFKC').trim() : value.trim();
    if (!v) continue;
    if (t === 'id_number' || t === 'uscc') v = v.toUpperCase();
    else if (t === 'integer' && INTEGER.test(v)) { out[name] = Number(v); continue; }
    else if (t === 'decimal' && NUMBER.test(v)) { out[name] = Number(v); continue; }
    else if (t === 'boolean' && (TRUE.has(v.toLowerCase()) || FALSE.has(v.toLowerCase()))) { out[name] = TRUE.has(v.toLowerCase()); continue; }
    out[name] = v;
  }
  return out;
}

const validators = new WeakMap();
function validatorFor(schema) {
  if (!validators.has(schema)) validators.set(schema, new Validator(schema, '2020-12', false));
  return validators.get(schema);
}

/** Is the normal-shape form valid under the schema? */
export function valid(schema, form) {
  return validatorFor(schema).validate(form).valid;
}

const QUOTED = /"([^"]+)"/;

/** {valid, errors: [{field, zh, en}]}: one message per field, in the words the hub uses. */
export function check(schema, form) {
  const result = validatorFor(schema).validate(form);
  const seen = new Map();
  for (const e of result.errors) {
    let field = e.instanceLocation.replace(/^#\/?/, '').split('/')[0];
    if (!field) {
      const m = QUOTED.exec(e.error);
      if (!m || !['required', 'additionalProperties'].includes(e.keyword)) continue;
      field = m[1];
    }
    if (seen.has(field)) continue;
    const prop = (schema.properties || {})[field] || {};
    const label = prop.title || field;
    const [zh, en] = message(e.keyword, prop, label);
    if (zh) seen.set(field, { field: `form.${field}`, zh, en });
  }
  return { valid: result.valid, errors: [...seen.values()] };
}

function message(keyword, prop, label) {
  switch (keyword) {
    case 'required': return [`${label}为必填项`, 'required'];
    case 'type': return [`${label}: 类型不正确`, 'wrong type'];
    case 'enum': return [`${label}: 应为以下之一: ${(prop.enum || []).join('、')}`, 'not one of the options'];
    case 'pattern': case 'format': return [`${label}: 格式不正确或校验码错误`, 'wrong format or check digit'];
    case 'minLength': return [`${label}: 长度不少于${prop.minLength}`, `at least ${prop.minLength} characters`];
    case 'maxLength': return [`${label}: 长度不超过${prop.maxLength}`, `at most ${prop.maxLength} characters`];
    case 'minimum': return [`${label}: 不得小于${prop.minimum}`, `must be >= ${prop.minimum}`];
    case 'maximum': return [`${label}: 不得大于${prop.maximum}`, `must be <= ${prop.maximum}`];
    case 'additionalProperties': return [`${label}: 表单中没有这个字段`, 'no such field in this form'];
    default: return [null, null];
  }
}
