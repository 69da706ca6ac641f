/**
 * Talking to the hub: one request function that follows redirects itself (the token goes only to the
 * hub's own origin, never to the CDN a download is redirected to), retries with backoff on 429, 5xx and
 * dropped sockets (honouring Retry-After), and turns the hub's refusals into one-line errors that say
 * what to do; plus the tree listing with its Link-header pagination.
 */

export interface HubClient {
  /** The hub's base URL, without a trailing slash (HF_ENDPOINT or https://huggingface.co). */
  endpoint: string;
  token?: string | undefined;
  /** Attempts per request before giving up (default 6). */
  retries?: number;
  /** First backoff delay in ms, doubled per attempt up to 30 s (default 1000). */
  retryBaseMs?: number;
  signal?: AbortSignal | undefined;
  /** Told about each retry: what failed and how long we wait. */
  onRetry?: (what: string, reason: string, waitMs: number) => void;
}

/** A refusal from the hub (or a network failure after all retries), as a sentence for users. */
export class HubError extends Error {
  constructor(message: string, readonly status = 0) {
    super(message);
    this.name = 'HubError';
  }
}

const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);
/** The longest Retry-After we wait (a hub asking for more is treated as a failure). */
const MAX_RETRY_AFTER_MS = 5 * 60_000;

export function hubEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  return (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, '');
}

/** --token, else HF_TOKEN (or the older HUGGING_FACE_HUB_TOKEN), else none. */
export function tokenFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || undefined;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) { reject(signal.reason); return; }
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(t); reject(signal!.reason); };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Retry-After as milliseconds (seconds or an HTTP date), or undefined. */
export function retryAfterMs(v: string | null): number | undefined {
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - Date.now());
}

/** A download that broke off (closed early, stalled): retried like a dropped socket. */
export class NetworkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NetworkError';
  }
}

/**
 * Whether an error is a network failure worth retrying: fetch's TypeError ('fetch failed', 'terminated'
 * when a socket drops mid-body) or our NetworkError. Not an abort, a refusal, or a disk error (ENOSPC…).
 */
export function isTransient(e: unknown): boolean {
  return e instanceof NetworkError || (e instanceof TypeError && (e.message === 'fetch failed' || e.message === 'terminated' || (e as { cause?: unknown }).cause !== undefined));
}

/** The reason inside fetch's 'fetch failed' / 'terminated'. */
export function networkReason(e: unknown): string {
  const err = e as Error & { cause?: Error & { code?: string } };
  const c = err.cause;
  return c ? `${err.message}: ${c.code ?? c.message}` : err.message;
}

/**
 * One request with redirects followed by hand: Authorization is sent to the hub's origin only. Returns
 * the final response (any status); throws only on network failures.
 */
export async function fetchFollowing(client: HubClient, url: string, init: { method?: string; headers?: Record<string, string>; signal?: AbortSignal; follow?: boolean }): Promise<Response> {
  const hubOrigin = new URL(client.endpoint).origin;
  let current = url;
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = { 'user-agent': 'grok-ts', ...init.headers };
    if (client.token && new URL(current).origin === hubOrigin) headers.authorization = `Bearer ${client.token}`;
    const res = await fetch(current, { method: init.method ?? 'GET', headers, redirect: 'manual', ...(init.signal ? { signal: init.signal } : {}) });
    const loc = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && loc && init.follow !== false) {
      if (hop >= 10) throw new HubError(`${url}: more than 10 redirects`);
      await res.body?.cancel();
      current = new URL(loc, current).href;
      continue;
    }
    return res;
  }
}

/** What the hub's refusal means, for `what` (the repo, or repo and file). */
export async function refusal(res: Response, what: { repo: string; file?: string; revision: string; endpoint: string; token: boolean }): Promise<HubError> {
  const code = res.headers.get('x-error-code') ?? '';
  let detail = res.headers.get('x-error-message') ?? '';
  if (!detail) {
    try {
      const text = (await res.text()).slice(0, 400);
      try { detail = (JSON.parse(text) as { error?: string }).error ?? ''; } catch { detail = text.includes('<') ? '' : text.trim(); }
    } catch { /* no body */ }
  }
  const page = `${what.endpoint}/${what.repo}`;
  const file = what.file ? ` file '${what.file}'` : '';
  switch (res.status) {
    case 401:
    case 403:
      if (code === 'GatedRepo' || res.status === 403) {
        return new HubError(`${what.repo} is gated (${res.status}): accept its licence at ${page} while logged in, and set HF_TOKEN (or --token) to a token of that account${what.token ? ' (the token given was refused or has no access)' : ''}`, res.status);
      }
      return new HubError(`${what.repo}: not authorised (401)${what.token ? ': the token was refused' : ''}; set HF_TOKEN (or --token) to a Hugging Face access token, and accept the model's licence at ${page} if it asks for it`, res.status);
    case 404:
      if (code === 'RevisionNotFound') return new HubError(`${what.repo}: revision '${what.revision}' not found (404)`, 404);
      if (code === 'EntryNotFound' || (what.file && code !== 'RepoNotFound')) return new HubError(`${what.repo}:${file} not found at revision '${what.revision}' (404)`, 404);
      return new HubError(`repository ${what.repo} not found at ${what.endpoint} (404)${what.token ? '' : '; if it is private, set HF_TOKEN'}`, 404);
    case 416:
      return new HubError(`${what.repo}:${file} the server refused the byte range asked for (416)`, 416);
    default:
      return new HubError(`${what.repo}:${file} the hub answered ${res.status} ${res.statusText}${detail ? `: ${detail}` : ''}`, res.status);
  }
}

/**
 * Run `attempt` until it succeeds, retrying transient failures with exponential backoff (or the server's
 * Retry-After). `attempt` throws RetryableStatus for a 429/5xx answer. A failure after progress (bytes
 * received) starts the count again, so a long download survives any number of separate drops.
 */
export async function withRetries<T>(client: HubClient, what: string, attempt: (madeProgress: () => void) => Promise<T>): Promise<T> {
  const max = client.retries ?? 6;
  const base = client.retryBaseMs ?? 1000;
  let failures = 0;
  for (;;) {
    let progressed = false;
    try {
      return await attempt(() => { progressed = true; });
    } catch (e) {
      if (client.signal?.aborted) throw client.signal.reason;
      const retryable = e instanceof RetryableStatus || isTransient(e);
      if (!retryable) throw e;
      failures = progressed ? 1 : failures + 1;
      const reason = e instanceof RetryableStatus ? `${e.status}` : networkReason(e);
      if (failures >= max) {
        throw new HubError(`${what}: gave up after ${failures} attempts (last: ${reason}); run the same command again to resume`, e instanceof RetryableStatus ? e.status : 0);
      }
      const after = e instanceof RetryableStatus ? e.retryAfterMs : undefined;
      if (after !== undefined && after > MAX_RETRY_AFTER_MS) throw new HubError(`${what}: the hub asks to wait ${Math.round(after / 1000)} s (${reason}); try again later`, (e as RetryableStatus).status);
      const wait = after ?? Math.min(30_000, base * 2 ** (failures - 1));
      client.onRetry?.(what, reason, wait);
      await sleep(wait, client.signal);
    }
  }
}

/** A 429/5xx answer: retried after Retry-After or the backoff. */
export class RetryableStatus extends Error {
  constructor(readonly status: number, readonly retryAfterMs: number | undefined) {
    super(`HTTP ${status}`);
    this.name = 'RetryableStatus';
  }
}

/** Throw RetryableStatus for a status worth retrying (after discarding the body). */
export async function checkRetryable(res: Response): Promise<void> {
  if (RETRY_STATUS.has(res.status)) {
    await res.body?.cancel().catch(() => {});
    throw new RetryableStatus(res.status, retryAfterMs(res.headers.get('retry-after')));
  }
}

/** One entry of the tree listing. */
export interface TreeEntry {
  type: 'file' | 'directory';
  path: string;
  size: number;
  oid: string;
  lfs?: { oid: string; size: number };
}

/** Every file of `repo` at `revision`: GET /api/models/{repo}/tree/{revision}?recursive=true, following Link: rel="next". */
export async function listTree(client: HubClient, repo: string, revision: string): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  let url: string | null = `${client.endpoint}/api/models/${repo}/tree/${encodeURIComponent(revision)}?recursive=true`;
  while (url) {
    const page: string = url;
    const { entries, next } = await withRetries(client, `listing ${repo}`, async () => {
      const res = await fetchFollowing(client, page, client.signal ? { signal: client.signal } : {});
      await checkRetryable(res);
      if (!res.ok) throw await refusal(res, { repo, revision, endpoint: client.endpoint, token: !!client.token });
      const body = await res.json() as unknown;
      if (!Array.isArray(body)) throw new HubError(`${repo}: the tree listing is not a JSON array`);
      return { entries: body as TreeEntry[], next: nextLink(res.headers.get('link'), page) };
    });
    for (const e of entries) {
      if (e.type !== 'file') continue;
      if (typeof e.path !== 'string' || !Number.isSafeInteger(e.size) || e.size < 0 || typeof e.oid !== 'string' || (e.lfs && (typeof e.lfs.oid !== 'string' || !Number.isSafeInteger(e.lfs.size) || e.lfs.size < 0))) {
        throw new HubError(`${repo}: a tree entry without path, size or oid: ${JSON.stringify(e).slice(0, 200)}`);
      }
      // the path becomes a file under snapshots/: nothing that could lead out of it
      if (!safeRepoPath(e.path)) throw new HubError(`${repo}: the tree listing has a path that is not a plain relative path: ${JSON.stringify(e.path).slice(0, 200)}`);
      out.push(e);
    }
    url = next;
  }
  return out;
}

/** A repository path that stays inside a folder: relative, '/'-separated, no empty, '.' or '..' parts. */
export function safeRepoPath(p: string): boolean {
  return p.length > 0 && !p.includes('\\') && !p.includes('\0') && p.split('/').every((s) => s !== '' && s !== '.' && s !== '..');
}

/** The rel="next" URL of a Link header, resolved against the page's URL. */
export function nextLink(link: string | null, base: string): string | null {
  if (!link) return null;
  for (const part of link.split(',')) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part);
    if (m) return new URL(m[1]!, base).href;
  }
  return null;
}
