/**
 * A local stand-in for the Hugging Face Hub, speaking the routes `grok pull` uses, so no test touches the
 * internet:
 *   GET  /api/models/{org}/{name}/tree/{rev}?recursive=true   a page of entries, Link: <…>; rel="next"
 *   HEAD|GET /{org}/{name}/resolve/{rev}/{path}                 X-Repo-Commit, ETag / X-Linked-Etag / X-Linked-Size;
 *        LFS files answer 302 to the "CDN" (a second server on another port), others 200 with the bytes
 *   GET  {cdn}/blobs/{sha256}                                  the bytes, with Range (206)
 * plus misbehaviour on request: gated repos (401 without the token), 429 with Retry-After, 503, a
 * connection dropped mid-file, corrupted bytes. Every request is logged (method, host, path, Range,
 * whether Authorization came), so tests can prove what was and was not fetched.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface FakeFile { path: string; data: Buffer; lfs?: boolean }

export interface FakeRepo {
  id: string;
  commit: string;
  files: FakeFile[];
  /** Requests without `Bearer {token}` get 401. */
  token?: string;
  /** Sizes the tree listing claims instead of the real ones (for the free-disk check). */
  fakeSize?: Record<string, number>;
}

export interface LogEntry { host: 'hub' | 'cdn'; method: string; path: string; range?: string; auth: boolean; status: number }

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
export const gitSha1 = (b: Buffer): string => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
export const etagOf = (f: FakeFile): string => (f.lfs ? sha256(f.data) : gitSha1(f.data));

/** Deterministic bytes (xorshift), so tests need no fixtures for what they download. */
export function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

export const commitOf = (s: string): string => createHash('sha1').update(s).digest('hex');

export class FakeHub {
  readonly repos = new Map<string, FakeRepo>();
  readonly log: LogEntry[] = [];
  /** Tree entries per page. */
  pageSize = 1000;
  /** path → bytes after which the next body of that file is cut (the socket destroyed); once each. */
  readonly dropAfter = new Map<string, number>();
  /** path → serve wrong bytes (one flipped) for that file. */
  readonly corrupt = new Set<string>();
  /** Route prefix ('tree', 'resolve', 'cdn') → answers to give first: [status, retryAfterSeconds?]. */
  readonly failures = new Map<string, [number, number?][]>();
  /** Pause (ms) between 64 KiB chunks of a body: lets a test abort mid-download. */
  chunkDelayMs = 0;
  private hub!: http.Server;
  private cdnServer!: http.Server;
  endpoint = '';
  cdn = '';

  add(repo: FakeRepo): this {
    this.repos.set(repo.id, repo);
    return this;
  }

  async start(): Promise<this> {
    this.hub = http.createServer((q, r) => this.onHub(q, r));
    this.cdnServer = http.createServer((q, r) => this.onCdn(q, r));
    await Promise.all([this.hub, this.cdnServer].map((s) => new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok))));
    this.endpoint = `http://127.0.0.1:${(this.hub.address() as AddressInfo).port}`;
    this.cdn = `http://127.0.0.1:${(this.cdnServer.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    for (const s of [this.hub, this.cdnServer]) s.closeAllConnections();
    await Promise.all([this.hub, this.cdnServer].map((s) => new Promise<void>((ok) => s.close(() => ok()))));
  }

  /** GETs that carried file bytes (CDN downloads and non-LFS resolves answered 200/206). */
  bodyGets(): LogEntry[] {
    return this.log.filter((l) => l.method === 'GET' && (l.host === 'cdn' || (l.path.includes('/resolve/') && (l.status === 200 || l.status === 206))));
  }

  private failure(route: string, res: http.ServerResponse): boolean {
    const queue = this.failures.get(route);
    const f = queue?.shift();
    if (!f) return false;
    res.writeHead(f[0], f[1] !== undefined ? { 'retry-after': String(f[1]) } : {});
    res.end(`simulated ${f[0]}`);
    return true;
  }

  private record(req: http.IncomingMessage, host: 'hub' | 'cdn', res: http.ServerResponse): void {
    const entry: LogEntry = { host, method: req.method!, path: req.url!, auth: req.headers.authorization !== undefined, status: 0, ...(req.headers.range ? { range: req.headers.range } : {}) };
    this.log.push(entry);
    res.on('finish', () => { entry.status = res.statusCode; });
    res.on('close', () => { entry.status ||= res.statusCode; });
  }

  private onHub(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.record(req, 'hub', res);
    const url = new URL(req.url!, this.endpoint);
    const tree = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)$/.exec(url.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const m = tree ?? resolve;
    if (!m) { res.writeHead(404).end('no route'); return; }
    if (this.failure(tree ? 'tree' : 'resolve', res)) return;
    const repo = this.repos.get(m[1]!);
    if (!repo) { res.writeHead(404, { 'x-error-code': 'RepoNotFound' }).end('{"error":"Repository not found"}'); return; }
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) {
      res.writeHead(401, { 'x-error-code': 'GatedRepo' }).end('{"error":"Access to this model is restricted"}');
      return;
    }
    const rev = decodeURIComponent(m[2]!);
    if (rev !== 'main' && rev !== repo.commit) { res.writeHead(404, { 'x-error-code': 'RevisionNotFound' }).end('{"error":"Invalid rev id"}'); return; }
    if (tree) {
      const entries = this.entries(repo);
      const cursor = Number(url.searchParams.get('cursor') ?? 0);
      const page = entries.slice(cursor, cursor + this.pageSize);
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (cursor + this.pageSize < entries.length) headers.link = `<${this.endpoint}${url.pathname}?recursive=true&cursor=${cursor + this.pageSize}>; rel="next"`;
      res.writeHead(200, headers).end(JSON.stringify(page));
      return;
    }
    const file = repo.files.find((f) => f.path === decodeURIComponent(m[3]!));
    if (!file) { res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end('{"error":"Entry not found"}'); return; }
    const common = { 'x-repo-commit': repo.commit };
    if (file.lfs) {
      const sha = sha256(file.data);
      res.writeHead(302, { ...common, location: `${this.cdn}/blobs/${sha}?repo=${encodeURIComponent(repo.id)}&file=${encodeURIComponent(file.path)}`, 'x-linked-etag': `"${sha}"`, 'x-linked-size': String(file.data.length), etag: `"${gitSha1(Buffer.from(`pointer ${sha}`))}"` });
      res.end();
      return;
    }
    this.sendBody(req, res, file, { ...common, etag: `"${gitSha1(file.data)}"` });
  }

  private onCdn(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.record(req, 'cdn', res);
    if (this.failure('cdn', res)) return;
    const url = new URL(req.url!, this.cdn);
    const repo = this.repos.get(url.searchParams.get('repo') ?? '');
    const file = repo?.files.find((f) => f.path === url.searchParams.get('file'));
    if (!file || url.pathname !== `/blobs/${sha256(file.data)}`) { res.writeHead(404).end('NoSuchKey'); return; }
    this.sendBody(req, res, file, {});
  }

  /** The bytes (or a Range of them), cut or corrupted when asked. */
  private sendBody(req: http.IncomingMessage, res: http.ServerResponse, file: FakeFile, headers: Record<string, string>): void {
    let data = file.data;
    if (this.corrupt.has(file.path)) { data = Buffer.from(data); data[data.length >> 1] ^= 0xff; }
    let start = 0;
    let end = data.length; // exclusive
    let status = 200;
    const range = req.headers.range;
    if (range) {
      const r = /^bytes=(\d+)-(\d*)$/.exec(range);
      if (!r || Number(r[1]) >= data.length) { res.writeHead(416, { 'content-range': `bytes */${data.length}` }).end(); return; }
      start = Number(r[1]);
      end = r[2] ? Math.min(data.length, Number(r[2]) + 1) : data.length;
      status = 206;
      headers['content-range'] = `bytes ${start}-${end - 1}/${data.length}`;
    }
    res.writeHead(status, { ...headers, 'accept-ranges': 'bytes', 'content-length': String(end - start), 'content-type': 'application/octet-stream' });
    if (req.method === 'HEAD') { res.end(); return; }
    const cut = this.dropAfter.get(file.path);
    if (cut !== undefined) this.dropAfter.delete(file.path);
    const body = data.subarray(start, cut !== undefined ? Math.min(end, start + cut) : end);
    const chunk = 64 << 10;
    let at = 0;
    const pump = () => {
      while (at < body.length) {
        const piece = body.subarray(at, at + chunk);
        at += piece.length;
        const ok = res.write(piece);
        if (this.chunkDelayMs) { setTimeout(pump, this.chunkDelayMs); return; }
        if (!ok) { res.once('drain', pump); return; }
      }
      // cut: short of Content-Length, drop the socket once the client has had time to read what was sent
      // (a stream that errors discards what its reader has not taken yet)
      if (cut !== undefined) { setTimeout(() => res.socket?.destroy(), 200); return; }
      res.end();
    };
    pump();
  }

  private entries(repo: FakeRepo): object[] {
    const dirs = new Set<string>();
    const out: object[] = [];
    for (const f of repo.files) {
      const parts = f.path.split('/');
      for (let i = 1; i < parts.length; i++) {
        const d = parts.slice(0, i).join('/');
        if (!dirs.has(d)) { dirs.add(d); out.push({ type: 'directory', oid: commitOf(d), size: 0, path: d }); }
      }
      const size = repo.fakeSize?.[f.path] ?? f.data.length;
      out.push(f.lfs
        ? { type: 'file', oid: gitSha1(Buffer.from(`pointer ${sha256(f.data)}`)), size, path: f.path, lfs: { oid: sha256(f.data), size, pointerSize: 134 } }
        : { type: 'file', oid: gitSha1(f.data), size, path: f.path });
    }
    return out;
  }
}

/** A fresh temporary folder, removed by the caller's t.after. */
export function tempDir(prefix = 'grok-pull-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * Lay out a cache as huggingface_hub does, by hand from its documented layout (not with our code), for the
 * interoperability tests: blobs/{etag}, snapshots/{commit}/{path} → relative links, refs/main.
 */
export function handMadeCache(cacheDir: string, repo: string, commit: string, files: { path: string; data?: Buffer; source?: string; lfs?: boolean }[]): string {
  const folder = path.join(cacheDir, `models--${repo.replace('/', '--')}`);
  fs.mkdirSync(path.join(folder, 'blobs'), { recursive: true });
  fs.mkdirSync(path.join(folder, 'refs'), { recursive: true });
  fs.writeFileSync(path.join(folder, 'refs', 'main'), commit);
  for (const f of files) {
    const data = f.data ?? fs.readFileSync(f.source!);
    const etag = f.lfs === false ? gitSha1(data) : sha256(data);
    fs.writeFileSync(path.join(folder, 'blobs', etag), data);
    const link = path.join(folder, 'snapshots', commit, f.path);
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(path.join(...Array(f.path.split('/').length + 1).fill('..'), 'blobs', etag), link);
  }
  return path.join(folder, 'snapshots', commit);
}
