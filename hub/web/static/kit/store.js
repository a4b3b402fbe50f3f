// The kit's local store: IndexedDB, encrypted at rest with WebCrypto.
// A random AES-GCM data key encrypts every value; the data key is kept only wrapped (AES-GCM)
// under a key derived with PBKDF2-SHA-256 from the agent's kit PIN. Nothing personal is stored in
// clear: the database holds the PBKDF2 salt and iteration count, the wrapped key, and per value an
// IV and ciphertext under a random key (a record's UUID). Locking forgets the data key; only the
// PIN brings it back. See docs/offline-kit.md for what this does and does not protect against.

const DB_NAME = 'tbh-kit';
const ITERATIONS = 210000; // PBKDF2-SHA-256, OWASP's 2023 floor for this hash
const enc = new TextEncoder();
const dec = new TextDecoder();

let dbPromise = null;
let dataKey = null;

function db() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = () => {
        req.result.createObjectStore('meta');
        req.result.createObjectStore('records');
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  return dbPromise;
}

async function op(store, mode, fn) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const tx = d.transaction(store, mode);
    const req = fn(tx.objectStore(store));
    tx.oncomplete = () => resolve(req ? req.result : undefined);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

const rawGet = (store, key) => op(store, 'readonly', (s) => s.get(key));
const rawPut = (store, key, value) => op(store, 'readwrite', (s) => s.put(value, key));
const rawKeys = (store) => op(store, 'readonly', (s) => s.getAllKeys());

async function kek(pin, salt, iterations) {
  const base = await crypto.subtle.importKey('raw', enc.encode(pin), 'PBKDF2', false, ['deriveKey']);
  return crypto.subtle.deriveKey(
    { name: 'PBKDF2', hash: 'SHA-256', salt, iterations },
    base,
    { name: 'AES-GCM', length: 256 },
    false,
    ['wrapKey', 'unwrapKey'],
  );
}

/** Is this browser set up (a wrapped key exists)? */
export async function enrolled() {
  return (await rawGet('meta', 'keyring')) !== undefined;
}

export function unlocked() {
  return dataKey !== null;
}

/** First use: a new data key, wrapped under the PIN. */
export async function setUp(pin) {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt', 'decrypt']);
  const wrapped = await crypto.subtle.wrapKey('raw', key, await kek(pin, salt, ITERATIONS), { name: 'AES-GCM', iv });
  await rawPut('meta', 'keyring', { salt, iv, wrapped, iterations: ITERATIONS });
  await unlock(pin); // keep a non-extractable copy only
}

/** The PIN unwraps the data key (AES-GCM refuses a wrong PIN: the tag does not verify). */
export async function unlock(pin) {
  const ring = await rawGet('meta', 'keyring');
  if (!ring) throw new Error('not enrolled');
  try {
    dataKey = await crypto.subtle.unwrapKey(
      'raw', ring.wrapped, await kek(pin, ring.salt, ring.iterations), { name: 'AES-GCM', iv: ring.iv },
      { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt'],
    );
  } catch {
    throw new Error('口令不正确 (wrong PIN)');
  }
}

export function lock() {
  dataKey = null;
}

async function seal(value) {
  if (!dataKey) throw new Error('locked');
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, dataKey, enc.encode(JSON.stringify(value)));
  return { iv, ct };
}

async function unseal(sealed) {
  if (!dataKey) throw new Error('locked');
  const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: sealed.iv }, dataKey, sealed.ct);
  return JSON.parse(dec.decode(pt));
}

export async function getSecret(key) {
  const sealed = await rawGet('meta', key);
  return sealed === undefined ? undefined : unseal(sealed);
}

export async function putSecret(key, value) {
  await rawPut('meta', key, await seal(value));
}

export async function putRecord(record) {
  await rawPut('records', record.id, await seal(record));
}

export async function getRecord(id) {
  const sealed = await rawGet('records', id);
  return sealed === undefined ? undefined : unseal(sealed);
}

export async function records() {
  const out = [];
  for (const id of await rawKeys('records')) out.push(await getRecord(id));
  out.sort((a, b) => (a.taken_at < b.taken_at ? -1 : 1));
  return out;
}

/** Forget everything this browser holds for the kit (a revoked device, or the agent's choice). */
export async function wipe() {
  dataKey = null;
  const d = await db();
  d.close();
  dbPromise = null;
  await new Promise((resolve, reject) => {
    const req = indexedDB.deleteDatabase(DB_NAME);
    req.onsuccess = () => resolve();
    req.onerror = () => reject(req.error);
    req.onblocked = () => resolve();
  });
}
