/**
 * A typed client of the server's HTTP API (`/v1`, docs/API.md) over `fetch`: documents at the head, at a version or at
 * a time (with `ETag`/`If-None-Match`, so a poller's unchanged document costs a 304), ops paged or streamed as NDJSON,
 * text and sanitised HTML export, create, delete, and server-side edits deduplicated by an `Idempotency-Key` so a retry
 * is applied once. Errors are {@link CollabApiError}s carrying the API's codes.
 *
 * This module imports nothing at run time from the rest of the SDK: a page that uses only the API does not bundle the
 * socket client and its protobuf code, and a page that uses only the socket client does not bundle this.
 * @module
 */
import type { TokenRequest } from "./client.js";
import type { RichComponent } from "./rich.js";
import type { TextOp } from "./text.js";

/** A Quill Delta op as the API writes rich-text content and ops (docs/API.md, "JSON"): the rich-text type's component, quill-delta's `Op`. */
export type ApiDeltaOp = RichComponent;

/** Which state of a document a read asks for: the head (`undefined`), an explicit version, or the document as it was at a time. */
export type DocumentPoint = { version: number } | { time: Date | string };

/** A document at one version (`GET /v1/docs/{id}`). */
export interface ApiDocument {
  id: string;
  /** `text-unicode` or `rich-text`. */
  type: string;
  /** The version the content is at (0 before the first op). */
  version: number;
  /** A `text-unicode` document's text, or a `rich-text` document's Delta ops (inserts only). */
  content: string | ApiDeltaOp[];
  /** The response's entity tag (`"<version>"`): give it to {@link CollabHttpClient.getDocumentIfChanged}. */
  etag: string | null;
}

/** One committed op (`GET /v1/docs/{id}/ops`). */
export interface ApiOp {
  /** The document version after the op. */
  version: number;
  /** The op as committed: ot-text-unicode's JSON (a {@link TextOp}) or a Quill Delta. */
  op: TextOp | ApiDeltaOp[];
  /** The authenticated user who made it; null on an anonymous server. */
  author: string | null;
  clientId: string;
  clientSeq: number;
  /** When it was sequenced, RFC 3339. */
  time: string;
}

/** A page of ops: versions `from + 1` up to at most `to`; `next` is the next page's `from`, null at the end. */
export interface ApiOpsPage {
  id: string;
  from: number;
  to: number;
  ops: ApiOp[];
  next: number | null;
}

/** The outcome of a server-side edit. */
export interface ApiEditResult {
  id: string;
  /** The version the op was committed as. */
  version: number;
  /** True when this key's edit had been committed before: not applied again, `version` is the one it got then. */
  duplicate: boolean;
  /** The `Idempotency-Key` it travelled with (the caller's or a random one): resend with it to retry safely. */
  idempotencyKey: string;
}

/** One document of a listing. */
export interface ApiDocumentSummary {
  id: string;
  type: string;
  version: number;
  /** RFC 3339. */
  created: string;
}

/** A page of the documents the caller may read, in id order; `next` is the next page's `after`, null at the end. */
export interface ApiDocumentList {
  documents: ApiDocumentSummary[];
  next: string | null;
}

/** Settings of a {@link CollabHttpClient}. */
export interface CollabHttpClientOptions {
  /**
   * The server: its HTTP origin (`https://collab.example.com/`) or the socket's URL (`wss://collab.example.com/ws`,
   * mapped to the same origin: the API and the socket share one port). In a page served by Collab, `location.origin`.
   */
  url: string | URL;
  /**
   * Returns the access token, sent as `Authorization: Bearer`; `null` for none. Called before every request (with
   * `reason: "connect"`), so the socket client's `getToken` can be passed as is. Leave it out when the token travels in
   * the server's HttpOnly cookie (`Auth:CookieName`): see {@link credentials}.
   */
  getToken?: (request: TokenRequest) => string | null | undefined | Promise<string | null | undefined>;
  /**
   * `fetch`'s credentials mode. The default `same-origin` sends the page's cookies to its own origin, which is the
   * cookie mode of a page served by Collab (the server accepts the cookie from a page of an `Transport:AllowedOrigins`
   * origin or of its own origin). The API sends no CORS headers: a page of another origin goes through a same-origin
   * reverse proxy.
   */
  credentials?: RequestCredentials;
  /** Retries of a request the server says may succeed later (429, 503, a proxy's 502/504, a failed connection), for reads and edits; creates and deletes only on 429. Default 3. */
  maxRetries?: number;
  /** The first wait before retrying when the server named none (doubled per attempt, with jitter). Default 200 ms. */
  retryDelayMs?: number;
  /** The longest wait before a retry; a longer `Retry-After` is not waited out but thrown. Default 30,000 ms. */
  maxRetryDelayMs?: number;
  /** The `fetch` to use (default: the global one). */
  fetch?: typeof fetch;
}

/** The API's error codes (docs/API.md, "Errors"): the wire protocol's names where the socket has the condition too, HTTP-only names otherwise. */
export type ApiErrorCode =
  | "BAD_MESSAGE"
  | "INVALID_DOC_ID"
  | "INVALID_OP"
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | "VERSION_FROM_FUTURE"
  | "VERSION_TOO_OLD"
  | "DOC_DELETED"
  | "OP_TOO_LARGE"
  | "OP_DOES_NOT_FIT"
  | "DOC_TOO_LARGE"
  | "RATE_LIMITED"
  | "OVERLOADED"
  | "UNAVAILABLE"
  | "INTERNAL"
  | "DOC_NOT_FOUND"
  | "NOT_FOUND"
  | "DOC_EXISTS"
  | "UNSUPPORTED_TYPE"
  | "UNSUPPORTED_FORMAT";

/**
 * The API refused a request (an RFC 9457 problem, or an HTTP error from something in between), or it could not be
 * sent (`status` 0, the network error as `cause`). Branch on `code` (`DOC_EXISTS`, `VERSION_TOO_OLD`, ...) and `status`.
 */
export class CollabApiError extends Error {
  override name = "CollabApiError";

  /** @internal */
  constructor(
    /** The HTTP status; 0 when no response arrived. */
    readonly status: number,
    /** The problem's code; null when the response carried no problem (or none arrived). */
    readonly code: ApiErrorCode | (string & {}) | null,
    /** The server's explanation. */
    readonly detail: string,
    /** The same request may succeed later (the client has retried it already, `maxRetries` times). */
    readonly retryable: boolean,
    /** The document concerned, if any. */
    readonly docId: string | null,
    /** The `Retry-After` the server asked for, in ms, or null. */
    readonly retryAfterMs: number | null = null,
    /** For `VERSION_TOO_OLD`: the earliest version still available. */
    readonly earliestVersion: number | null = null,
    /** For `VERSION_FROM_FUTURE`: the head version. */
    readonly version: number | null = null,
    /** A 401's `WWW-Authenticate` challenge. */
    readonly challenge: string | null = null,
    options?: { cause?: unknown },
  ) {
    super(`${status === 0 ? "network" : status} ${code ?? ""}: ${detail}`, options);
  }
}

/** Options of one call. */
export interface RequestOptions {
  /** Aborts the request (and its retries). */
  signal?: AbortSignal;
}

type Retry = "always" | "rate-limit-only";

interface ProblemBody {
  code?: string;
  title?: string;
  detail?: string;
  retryable?: boolean;
  earliestVersion?: number;
  version?: number;
}

const NDJSON = "application/x-ndjson";

/**
 * The HTTP API client. One instance serves any number of concurrent calls.
 *
 * ```ts
 * const api = new CollabHttpClient({ url: location.origin });
 * const html = await api.exportHtml("reports/q1");
 * ```
 */
export class CollabHttpClient {
  /** The origin (and path prefix) the API's paths are resolved against, ending in `/`. */
  readonly baseUrl: string;
  private readonly options: CollabHttpClientOptions;
  private readonly fetch: typeof fetch;

  constructor(options: CollabHttpClientOptions) {
    this.options = options;
    this.baseUrl = apiBase(new URL(options.url.toString()));
    const given = options.fetch ?? globalThis.fetch;
    // Called unbound, a browser's fetch throws "Illegal invocation".
    this.fetch = (input, init) => given.call(globalThis, input, init);
  }

  /** The document at `at` (the head by default). Throws `DOC_NOT_FOUND`, `DOC_DELETED`, `VERSION_FROM_FUTURE`, `VERSION_TOO_OLD`... */
  async getDocument(docId: string, at?: DocumentPoint, options?: RequestOptions): Promise<ApiDocument> {
    return (await this.getDocumentIfChanged(docId, null, at, options))!;
  }

  /** The document at `at`, or `null` when it still has the entity tag `etag` (a 304 without a body): what a poller calls. */
  async getDocumentIfChanged(docId: string, etag: string | null, at?: DocumentPoint, options?: RequestOptions): Promise<ApiDocument | null> {
    const headers: Record<string, string> = etag === null ? {} : { "If-None-Match": etag };
    const response = await this.send("GET", docPath(docId) + query(pointQuery(at)), docId, "always", options, { headers });
    if (response.status === 304) {
      return null;
    }
    const body = (await response.json()) as Omit<ApiDocument, "etag">;
    return { id: body.id, type: body.type, version: body.version, content: body.content, etag: response.headers.get("ETag") };
  }

  /** One page of committed ops after version `from` (0) up to `to` (the head); ask for the next with `next` as `from`. */
  async getOps(docId: string, range: { from?: number; to?: number; limit?: number } = {}, options?: RequestOptions): Promise<ApiOpsPage> {
    const path = docPath(docId) + "/ops" + query(rangeQuery(range.from, range.to), range.limit === undefined ? null : `limit=${range.limit}`);
    return (await (await this.send("GET", path, docId, "always", options)).json()) as ApiOpsPage;
  }

  /** Every committed op after `from` up to `to` (fixed when the request starts), streamed as NDJSON in one request. */
  async *streamOps(docId: string, range: { from?: number; to?: number } = {}, options?: RequestOptions): AsyncGenerator<ApiOp> {
    const path = docPath(docId) + "/ops" + query(rangeQuery(range.from, range.to), "format=ndjson");
    const response = await this.send("GET", path, docId, "always", options, { headers: { Accept: NDJSON } });
    if (response.body === null || !(response.headers.get("Content-Type") ?? "").startsWith(NDJSON)) {
      throw new CollabApiError(response.status, null, `expected an NDJSON stream, got ${response.headers.get("Content-Type")}`, false, docId);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (value !== undefined) {
          buffered += value;
        }
        let newline: number;
        while ((newline = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (line.length > 0) {
            yield JSON.parse(line) as ApiOp;
          }
        }
        if (done) {
          break;
        }
      }
      if (buffered.trim().length > 0) {
        yield JSON.parse(buffered) as ApiOp;
      }
    } finally {
      await reader.cancel().catch(() => undefined);
    }
  }

  /** The plain text at `at`: a `text-unicode` document's text, a `rich-text` one's without its embeds (Quill's `getText()`). */
  exportText(docId: string, at?: DocumentPoint, options?: RequestOptions): Promise<string> {
    return this.export(docId, "text", at, options);
  }

  /**
   * A `rich-text` document at `at` as sanitised HTML: markup generated from an allow-list, text and attributes escaped,
   * links only http/https/mailto (docs/API.md, "HTML export"); the bytes `GET /export?format=html` serves. A
   * `text-unicode` document is refused with 400 `UNSUPPORTED_FORMAT`.
   */
  exportHtml(docId: string, at?: DocumentPoint, options?: RequestOptions): Promise<string> {
    return this.export(docId, "html", at, options);
  }

  /** One page of the documents the caller may read whose id starts with `prefix`, in id order. */
  async listDocuments(page: { prefix?: string; after?: string; limit?: number } = {}, options?: RequestOptions): Promise<ApiDocumentList> {
    const path =
      "v1/docs" +
      query(
        page.prefix ? `prefix=${encodeURIComponent(page.prefix)}` : null,
        page.after === undefined ? null : `after=${encodeURIComponent(page.after)}`,
        page.limit === undefined ? null : `limit=${page.limit}`,
      );
    return (await (await this.send("GET", path, null, "always", options)).json()) as ApiDocumentList;
  }

  /** Every document the caller may read whose id starts with `prefix`, page after page. */
  async *listAllDocuments(prefix?: string, options?: RequestOptions): AsyncGenerator<ApiDocumentSummary> {
    let after: string | null = null;
    do {
      const page: ApiDocumentList = await this.listDocuments({ ...(prefix === undefined ? {} : { prefix }), ...(after === null ? {} : { after }) }, options);
      yield* page.documents;
      after = page.next;
    } while (after !== null);
  }

  /** Creates a `text-unicode` document holding `text`. Throws `DOC_EXISTS` (409) when the id is taken. */
  createTextDocument(docId: string, text = "", options?: RequestOptions): Promise<ApiDocument> {
    return this.create(docId, "text-unicode", text, options);
  }

  /** Creates a `rich-text` document holding `content` (Delta inserts, e.g. Quill's `getContents().ops`). Throws `DOC_EXISTS` (409). */
  createRichDocument(docId: string, content: ApiDeltaOp[] = [], options?: RequestOptions): Promise<ApiDocument> {
    return this.create(docId, "rich-text", content, options);
  }

  /** Deletes the document (a tombstone: subscribers get `DOC_DELETED`, later reads 410). */
  async deleteDocument(docId: string, options?: RequestOptions): Promise<void> {
    await this.send("DELETE", docPath(docId), docId, "rate-limit-only", options);
  }

  /**
   * A server-side edit: `op` (ot-text-unicode's JSON for a `text-unicode` document, a Quill Delta for a `rich-text` one)
   * made against `baseVersion`; the server transforms it past later ops and commits it. It travels with an
   * `Idempotency-Key` (`idempotencyKey`, or a random one), so this client's retries and yours with the same key are
   * applied once and answered with the first version (`duplicate: true`).
   */
  async submitOp(docId: string, baseVersion: number, op: TextOp | ApiDeltaOp[], options: RequestOptions & { idempotencyKey?: string } = {}): Promise<ApiEditResult> {
    const key = options.idempotencyKey ?? randomKey();
    if (key.length === 0 || key.length > 255 || !/^[\x20-\x7e]+$/.test(key)) {
      throw new RangeError("An Idempotency-Key is 1-255 printable ASCII characters.");
    }
    const response = await this.send("POST", docPath(docId) + "/ops", docId, "always", options, {
      headers: { "Content-Type": "application/json", "Idempotency-Key": key },
      body: JSON.stringify({ baseVersion, op }),
    });
    const result = (await response.json()) as Omit<ApiEditResult, "idempotencyKey">;
    return { id: result.id, version: result.version, duplicate: result.duplicate, idempotencyKey: key };
  }

  private async create(docId: string, type: string, content: unknown, options: RequestOptions | undefined): Promise<ApiDocument> {
    const response = await this.send("PUT", docPath(docId), docId, "rate-limit-only", options, {
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ type, content }),
    });
    const body = (await response.json()) as Omit<ApiDocument, "etag">;
    return { id: body.id, type: body.type, version: body.version, content: body.content, etag: response.headers.get("ETag") };
  }

  private async export(docId: string, format: "text" | "html", at: DocumentPoint | undefined, options: RequestOptions | undefined): Promise<string> {
    const response = await this.send("GET", docPath(docId) + "/export" + query(`format=${format}`, pointQuery(at)), docId, "always", options);
    return response.text();
  }

  /** Sends with the token and the credentials mode, retries as `retry` allows, and returns a 2xx or 304 response or throws. */
  private async send(method: string, path: string, docId: string | null, retry: Retry, options: RequestOptions | undefined, init: { headers?: Record<string, string>; body?: string } = {}): Promise<Response> {
    const url = this.baseUrl + path;
    const maxRetries = this.options.maxRetries ?? 3;
    for (let attempt = 1; ; attempt++) {
      const headers: Record<string, string> = { Accept: "application/json, application/problem+json", ...init.headers };
      const token = this.options.getToken === undefined ? null : await this.options.getToken({ reason: "connect", url });
      if (token) {
        headers["Authorization"] = `Bearer ${token}`;
      }
      let response: Response;
      try {
        response = await this.fetch(url, {
          method,
          headers,
          credentials: this.options.credentials ?? "same-origin",
          ...(init.body === undefined ? {} : { body: init.body }),
          ...(options?.signal === undefined ? {} : { signal: options.signal }),
        });
      } catch (error) {
        if (options?.signal?.aborted) {
          throw error;
        }
        // No answer: the request may or may not have reached the server; only reads and keyed edits are repeated.
        if (retry === "always" && attempt <= maxRetries) {
          await sleep(this.backoff(attempt), options?.signal);
          continue;
        }
        throw new CollabApiError(0, null, `${method} ${url} failed: ${(error as Error)?.message ?? String(error)}`, true, docId, null, null, null, null, { cause: error });
      }
      if (response.ok || response.status === 304) {
        return response;
      }
      const failure = await errorOf(response, docId);
      const delay = failure.retryAfterMs ?? this.backoff(attempt);
      const mayRetry = failure.retryable && (retry === "always" || failure.status === 429);
      if (!mayRetry || attempt > maxRetries || delay > (this.options.maxRetryDelayMs ?? 30_000)) {
        throw failure;
      }
      await sleep(delay, options?.signal);
    }
  }

  /** Exponential backoff with full jitter, between the first delay and the cap (the socket client's policy). */
  private backoff(attempt: number): number {
    const min = this.options.retryDelayMs ?? 200;
    const max = this.options.maxRetryDelayMs ?? 30_000;
    const ceiling = Math.min(max, min * 2 ** Math.min(attempt, 30));
    return min + (ceiling - min) * Math.random();
  }
}

/** The error of a non-2xx response: its problem body when it has one, else its status. */
async function errorOf(response: Response, docId: string | null): Promise<CollabApiError> {
  const text = await response.text().catch(() => "");
  const type = response.headers.get("Content-Type") ?? "";
  let problem: ProblemBody | null = null;
  if (type.startsWith("application/problem+json") || type.startsWith("application/json")) {
    try {
      problem = JSON.parse(text) as ProblemBody;
    } catch {
      // Not the API's problem: something in between answered; reported by its status.
    }
  }
  const status = response.status;
  const retryable = problem?.retryable ?? [429, 502, 503, 504].includes(status);
  const detail = problem?.detail ?? problem?.title ?? (text.length > 0 && text.length <= 512 ? text : response.statusText || String(status));
  return new CollabApiError(
    status,
    problem?.code ?? null,
    detail,
    retryable,
    docId,
    retryAfterMs(response.headers.get("Retry-After")),
    problem?.earliestVersion ?? null,
    problem?.version ?? null,
    response.headers.get("WWW-Authenticate"),
  );
}

/** `Retry-After` in ms: delta-seconds or an HTTP date. */
function retryAfterMs(value: string | null): number | null {
  if (value === null) {
    return null;
  }
  if (/^\d+$/.test(value.trim())) {
    return Number(value.trim()) * 1000;
  }
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

/** The document id rule (docs/PROTOCOL.md section 11), checked here so that an id like `a/../b` never reaches a URL. */
const DOC_ID = /^(?![/.])(?!.*\.\.)[A-Za-z0-9._:/-]{1,128}$/;

/** A document's path: its `/` travels as `%2F` inside the one path segment. */
function docPath(docId: string): string {
  if (!DOC_ID.test(docId)) {
    throw new RangeError(`'${docId}' is not a document id (1-128 characters of [A-Za-z0-9._:/-], not starting with '/' or '.', no '..').`);
  }
  return "v1/docs/" + encodeURIComponent(docId);
}

function pointQuery(at: DocumentPoint | undefined): string | null {
  if (at === undefined) {
    return null;
  }
  if ("version" in at) {
    return `version=${at.version}`;
  }
  return `at=${encodeURIComponent(typeof at.time === "string" ? at.time : at.time.toISOString())}`;
}

function rangeQuery(from: number | undefined, to: number | undefined): string | null {
  const parts = [from ? `from=${from}` : null, to === undefined ? null : `to=${to}`].filter((p) => p !== null);
  return parts.length === 0 ? null : parts.join("&");
}

function query(...parts: (string | null)[]): string {
  const present = parts.filter((p): p is string => p !== null && p.length > 0);
  return present.length === 0 ? "" : "?" + present.join("&");
}

/** The API's base: an http(s) origin and path, or a ws(s) socket URL's without its last segment. */
function apiBase(url: URL): string {
  const scheme = { "http:": "http:", "ws:": "http:", "https:": "https:", "wss:": "https:" }[url.protocol];
  if (scheme === undefined) {
    throw new RangeError(`'${url}' is not an http(s) or ws(s) URL.`);
  }
  let path = url.pathname;
  if (url.protocol === "ws:" || url.protocol === "wss:") {
    const trimmed = path.replace(/\/+$/, "");
    path = trimmed.slice(0, trimmed.lastIndexOf("/") + 1);
  }
  if (!path.endsWith("/")) {
    path += "/";
  }
  return `${scheme}//${url.host}${path}`;
}

/** A random idempotency key (`crypto.getRandomValues` exists in every browser context and Node; `randomUUID` only in secure ones). */
function randomKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
