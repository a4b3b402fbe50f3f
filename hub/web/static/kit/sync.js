// Sync, exactly once: pending records go to POST /api/v1/kit/sync (device token) in bounded
// batches, each under its record id (a UUID made when it was taken). The hub is idempotent on
// (device, record id), so a batch whose answer was lost is simply sent again and answered the
// same. Network failures and server errors retry with exponential backoff; the `online` event
// retries at once. A revoked device is told so (401 device_revoked) and wipes its local data.
import * as store from './store.js';

const BASE_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;

export class Syncer {
  constructor({ device, limits, onChange, onRevoked }) {
    this.device = device;
    this.limits = limits;
    this.onChange = onChange;
    this.onRevoked = onRevoked;
    this.running = false;
    this.again = false;
    this.failures = 0;
    this.timer = null;
    window.addEventListener('online', () => this.run());
  }

  /** Send what is pending; one run at a time (a call during a run makes it go round again). */
  async run() {
    if (this.running) { this.again = true; return; }
    this.running = true;
    clearTimeout(this.timer);
    try {
      do {
        this.again = false;
        await this.once();
      } while (this.again);
      this.failures = 0;
    } catch (err) {
      this.failures += 1;
      const delay = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (this.failures - 1));
      this.timer = setTimeout(() => this.run(), delay);
      this.onChange({ retryIn: delay, error: String(err.message || err) });
    } finally {
      this.running = false;
    }
  }

  batches(pending) {
    const out = [];
    let batch = []; let bytes = 0;
    for (const r of pending) {
      const size = JSON.stringify(r.payload).length;
      if (batch.length && (batch.length >= this.limits.records_per_request || bytes + size > this.limits.request_bytes)) {
        out.push(batch); batch = []; bytes = 0;
      }
      batch.push(r); bytes += size;
    }
    if (batch.length) out.push(batch);
    return out;
  }

  async once() {
    if (!store.unlocked()) return; // locked: nothing can be read until the PIN is given again
    const pending = (await store.records()).filter((r) => r.state === 'pending');
    // nothing to send still asks once (an empty batch): the hub notes the device was seen and
    // answers device_revoked to a revoked one, so a lost kit wipes itself when it is next online
    const batches = pending.length ? this.batches(pending) : [[]];
    for (const batch of batches) {
      let response;
      try {
        response = await fetch('/api/v1/kit/sync', {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Kit ${this.device.token}` },
          body: JSON.stringify({ records: batch.map((r) => r.payload) }),
          cache: 'no-store',
        });
      } catch {
        throw new Error('网络不可用，稍后自动重试 (offline, will retry)');
      }
      if (response.status === 401) {
        const body = await response.json().catch(() => ({}));
        const code = body.detail && body.detail.code;
        if (code === 'device_revoked') { await this.onRevoked(body.detail); return; }
        throw new Error((body.detail && body.detail.zh) || '设备凭证无效 (device refused)');
      }
      if (!response.ok) throw new Error(`同步失败 HTTP ${response.status}，稍后自动重试`);
      const { results } = await response.json();
      for (const res of results) {
        const record = batch.find((r) => r.id === res.id);
        if (!record) continue;
        if (res.status === 'accepted') {
          record.state = 'synced';
          record.number = res.number;
          record.errors = [];
        } else {
          record.state = res.status; // refused | conflict: the agent fixes and sends again
          record.errors = res.errors;
        }
        record.synced_at = new Date().toISOString();
        await store.putRecord(record);
      }
      this.onChange({});
    }
  }
}
