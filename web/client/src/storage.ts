/**
 * Where the client id and its last client seq live between page loads (docs/PROTOCOL.md section 6).
 * @module
 */

/** The part of the Web Storage API the SDK uses; `sessionStorage` satisfies it. */
export interface ClientStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** A storage in memory (Node, tests, or a page that wants no persistence). */
export class MemoryStorage implements ClientStorage {
  private readonly items = new Map<string, string>();

  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }

  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }

  removeItem(key: string): void {
    this.items.delete(key);
  }
}

/** The browser's per-tab `sessionStorage` when there is one (and it works: private modes may throw), else memory. */
export function defaultStorage(): ClientStorage {
  try {
    const storage = (globalThis as { sessionStorage?: ClientStorage }).sessionStorage;
    if (storage !== undefined) {
      const probe = "collab.probe";
      storage.setItem(probe, "1");
      storage.removeItem(probe);
      return storage;
    }
  } catch {
    // Storage disabled (sandboxed iframe, privacy settings): fall through.
  }
  return new MemoryStorage();
}

/**
 * Seqs a page load skips above the stored last seq. Duplicating a browser tab copies its sessionStorage, so two pages
 * can start from one stored (client id, last seq); the server then closes the older one with 4009 and it takes a
 * fresh id, but ops it sent before that must not share a seq with the newer page's. Each load therefore starts a new
 * block of 2^20 seqs: pages collide only after one of them sent a million ops under the shared id. (A reload is the
 * common case and harmless: the old page is gone.)
 */
export const SEQ_BLOCK = 2 ** 20;

/** @internal The client's identity as stored: `{"id": ..., "seq": ...}`. */
export interface StoredIdentity {
  clientId: string;
  lastSeq: number;
}

/** @internal */
export function readIdentity(storage: ClientStorage, key: string): StoredIdentity | null {
  try {
    const raw = storage.getItem(key);
    if (raw === null) {
      return null;
    }
    const parsed = JSON.parse(raw) as { id?: unknown; seq?: unknown };
    if (typeof parsed.id === "string" && parsed.id.length > 0 && typeof parsed.seq === "number" && Number.isSafeInteger(parsed.seq) && parsed.seq >= 0) {
      return { clientId: parsed.id, lastSeq: parsed.seq };
    }
  } catch {
    // Unreadable: start afresh.
  }
  return null;
}

/** @internal */
export function writeIdentity(storage: ClientStorage, key: string, identity: StoredIdentity | null): void {
  try {
    if (identity === null) {
      storage.removeItem(key);
    } else {
      storage.setItem(key, JSON.stringify({ id: identity.clientId, seq: identity.lastSeq }));
    }
  } catch {
    // Quota or disabled storage: the id then only lives as long as the page.
  }
}
