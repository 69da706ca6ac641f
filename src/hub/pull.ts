/**
 * `pull`: download a Hugging Face repository (or some of its files) into the hub cache.
 *
 * Written on Node's fetch rather than @huggingface/hub: that package's downloadFileToCacheDir (checked at
 * 2.x) streams each file in one request, restarts an interrupted download from zero (it overwrites the
 * .incomplete), does not check the sha256, uses one connection per file, and names the snapshot after the
 * file's last commit rather than the revision's commit, so its caches are not the ones huggingface_hub
 * writes. What we need is small: the tree listing, HEAD for the commit, ranged GETs.
 *
 * The steps: list the tree (or, offline, read the cache); choose the files; learn the commit (X-Repo-Commit
 * of a HEAD); skip what the cache has (blobs are shared across snapshots, named by their hash); check the
 * free disk against what is left to fetch; fetch the rest as byte ranges on `connections` connections at
 * once (a big file split into ranges, small files side by side), each range resumed where it stopped
 * after a drop; check each file's hash against the hub's (sha256 for LFS files, the git blob sha1
 * otherwise) before moving it into blobs/ and linking it into the snapshot.
 *
 * An interrupted download stays as blobs/{etag}.incomplete. Fetched as one range (huggingface_hub's way)
 * its size is how far it got; fetched as several, the ranges done are listed beside it in
 * {etag}.incomplete.parts, so the next pull resumes every range.
 */
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import {
  cachedFile, cachedSnapshot, hfHome, hubCacheDir, isCommit, linkIntoSnapshot, offlineFromEnv, parseRepoId, readRef, repoFolder, snapshotFiles, writeRef,
} from './cache.js';
import {
  checkRetryable, fetchFollowing, HubError, hubEndpoint, isTransient, listTree, NetworkError, networkReason, refusal, RetryableStatus, safeRepoPath, tokenFromEnv, withRetries, type HubClient, type TreeEntry,
} from './http.js';
import { selectFiles } from './select.js';

export interface PullOptions {
  /** `org/name` (a hub URL is accepted too). */
  repo: string;
  /** Paths, folders or globs (`*`, `**`) in the repository; default: everything (see `quant`). */
  files?: readonly string[];
  /** Only the GGUF files of this quant (Q4_K_M, IQ2_XS, Q8_0…; case-insensitive). */
  quant?: string;
  /** Branch, tag or commit (default 'main'). */
  revision?: string;
  /** The hub cache (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** Access token (default: HF_TOKEN, else the one `hf auth login` saved). Sent to the hub only, never to the CDN it redirects to. */
  token?: string;
  /** The hub's URL (default: HF_ENDPOINT, else https://huggingface.co). */
  endpoint?: string;
  /** Use the cache alone (default: HF_HUB_OFFLINE). */
  offline?: boolean;
  /** Requests at once (default 4): a big file's ranges, or several files. */
  connections?: number;
  /** The smallest range a file is split into (default 64 MiB); smaller files are fetched in one piece. */
  minPartBytes?: number;
  /** Attempts per request (default 6) and the first backoff (default 1000 ms, doubling). */
  retries?: number;
  retryBaseMs?: number;
  /** A download that receives nothing for this long is dropped and resumed (default 60 s). */
  stallMs?: number;
  /** Free-space probe (default fs.promises.statfs); for tests. */
  statfs?: (dir: string) => Promise<{ bavail: number | bigint; bsize: number | bigint }>;
  signal?: AbortSignal;
  /** Bytes present of the selected files (cached + fetched), throttled to a few calls a second. */
  onProgress?: (p: PullProgress) => void;
  /** Before fetching anything: what is cached and what will be fetched. */
  onPlan?: (p: PullPlan) => void;
  /** A request failed and will be retried. */
  onRetry?: (what: string, reason: string, waitMs: number) => void;
}

export interface PullProgress {
  doneBytes: number;
  totalBytes: number;
  /** Bytes received in this call (for a rate). */
  receivedBytes: number;
  filesDone: number;
  filesTotal: number;
  /** 'verify' while a finished file's hash is computed. */
  phase: 'download' | 'verify';
}

export interface PullPlan {
  repo: string;
  commit: string;
  files: number;
  totalBytes: number;
  cachedFiles: number;
  /** Bytes still to fetch (what the disk must have free). */
  fetchBytes: number;
  /** Bytes already there from an interrupted download. */
  resumedBytes: number;
}

export interface PullResult {
  repo: string;
  revision: string;
  commit: string;
  /** snapshots/{commit} in the repository's cache folder. */
  snapshot: string;
  /** The selected files in the repository. */
  repoFiles: string[];
  /** Their local paths (links into blobs/), in the same order. */
  files: string[];
  totalBytes: number;
  /** Bytes received by this call (0 when everything was cached). */
  receivedBytes: number;
}

/** Not enough free disk for what is left to fetch. */
export class DiskSpaceError extends Error {
  constructor(readonly dir: string, readonly needed: number, readonly free: number) {
    super(`not enough free disk space in ${dir}: the download needs ${fmtBytes(needed)} (${needed} bytes), ${fmtBytes(free)} (${free} bytes) are free; free some space or choose another cache with --dir / HF_HUB_CACHE`);
    this.name = 'DiskSpaceError';
  }
}

/** A downloaded file whose hash is not the hub's: deleted, never linked. */
export class ChecksumError extends Error {
  constructor(readonly file: string, readonly expected: string, readonly got: string, kind: string) {
    super(`${file}: the downloaded file's ${kind} is ${got}, but the hub says ${expected}; the corrupt download was deleted, run the same command again`);
    this.name = 'ChecksumError';
  }
}

export function fmtBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB'];
  let v = n / 1000;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

type Range = [start: number, end: number];

/** A piece of a file to fetch: [start, end), with `pos` how far it got. */
interface Unit { job: Job; start: number; end: number; pos: number }

interface Job {
  entry: TreeEntry;
  file: string;
  /** Other paths with the same bytes (the same blob): linked when it is in, not fetched again. */
  links: string[];
  etag: string;
  size: number;
  lfs: boolean;
  incomplete: string;
  /** Ranges present before this call started. */
  base: Range[];
  units: Unit[];
  /** Whether the ranges done are kept in {incomplete}.parts (several ranges, or an earlier one). */
  tracked: boolean;
  /** The hash, computed as the bytes arrive when the file is fetched in order from its start. */
  hasher: Hash | null;
  fh: Promise<fsp.FileHandle> | null;
  left: number;
  lastSave: number;
  /** The .parts write in progress: writes are chained, never interleaved. */
  saving: Promise<void> | null;
}

const PARTS = '.parts';

export async function pull(opts: PullOptions): Promise<PullResult> {
  const repo = parseRepoId(opts.repo);
  const revision = opts.revision ?? 'main';
  if (!safeRepoPath(revision) || /[^\w./-]/.test(revision)) throw new HubError(`'${revision}' is not a revision name (a branch, tag or commit)`);
  const cacheDir = path.resolve(opts.cacheDir ?? hubCacheDir());
  const folder = repoFolder(cacheDir, repo);
  const offline = opts.offline ?? offlineFromEnv();
  if (offline) return fromCache(repo, revision, cacheDir, folder, opts);

  const endpoint = (opts.endpoint ?? hubEndpoint()).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]/.test(endpoint) || !URL.canParse(endpoint)) throw new HubError(`the hub endpoint '${endpoint}' (HF_ENDPOINT) is not an http(s) URL`);
  const inner = new AbortController();
  const onOuterAbort = () => inner.abort(opts.signal!.reason);
  opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const client: HubClient = {
    endpoint,
    token: opts.token ?? tokenFromEnv() ?? savedToken(),
    signal: inner.signal,
    ...(opts.retries !== undefined ? { retries: opts.retries } : {}),
    ...(opts.retryBaseMs !== undefined ? { retryBaseMs: opts.retryBaseMs } : {}),
    ...(opts.onRetry ? { onRetry: opts.onRetry } : {}),
  };
  try {
    const tree = await listTree(client, repo, revision);
    if (!tree.length) throw new HubError(`${repo} has no files at revision '${revision}'`);
    const byPath = new Map(tree.map((e) => [e.path, e]));
    const repoFiles = selectFiles(tree.map((e) => e.path), { ...(opts.files ? { patterns: opts.files } : {}), ...(opts.quant ? { quant: opts.quant } : {}), where: repo });
    const commit = isCommit(revision) ? revision : await headCommit(client, repo, revision, repoFiles[0]!);
    fs.mkdirSync(path.join(folder, 'blobs'), { recursive: true });
    writeRef(folder, revision, commit);

    // what the cache already has, and what is left
    const jobs: Job[] = [];
    const files: string[] = [];
    let totalBytes = 0;
    let present = 0;
    let resumed = 0;
    let fetchBytes = 0;
    const byEtag = new Map<string, Job>();
    for (const f of repoFiles) {
      const e = byPath.get(f)!;
      const lfs = !!e.lfs;
      const size = e.lfs?.size ?? e.size;
      const etag = (e.lfs?.oid ?? e.oid).toLowerCase();
      if (!/^[0-9a-f]{40}(?:[0-9a-f]{24})?$/.test(etag)) throw new HubError(`${repo}: '${f}' has an unexpected oid '${etag}' in the tree listing`);
      totalBytes += size;
      const blob = path.join(folder, 'blobs', etag);
      files.push(path.join(folder, 'snapshots', commit, ...f.split('/')));
      const have = cachedFile(folder, commit, f);
      if (have && fs.statSync(have).size === size) { present += size; continue; }
      if (fs.existsSync(blob) && fs.statSync(blob).size === size) { linkIntoSnapshot(folder, commit, f, etag); present += size; continue; }
      const same = byEtag.get(etag);
      if (same) { same.links.push(f); continue; }
      fs.rmSync(blob, { force: true }); // a blob of the wrong size is not the file
      const incomplete = `${blob}.incomplete`;
      const { base, tracked } = rangesDone(incomplete, size);
      const got = base.reduce((a, [s, t]) => a + t - s, 0);
      present += got;
      resumed += got;
      fetchBytes += size - got;
      const job: Job = { entry: e, file: f, links: [], etag, size, lfs, incomplete, base, units: [], tracked, hasher: null, fh: null, left: 0, lastSave: 0, saving: null };
      jobs.push(job);
      byEtag.set(etag, job);
    }
    const cachedFiles = repoFiles.length - jobs.reduce((a, j) => a + 1 + j.links.length, 0);
    opts.onPlan?.({ repo, commit, files: repoFiles.length, totalBytes, cachedFiles, fetchBytes, resumedBytes: resumed });
    if (fetchBytes > 0) await checkDisk(path.join(folder, 'blobs'), fetchBytes, opts.statfs);

    const connections = Math.max(1, Math.min(64, Math.floor(opts.connections ?? 4)));
    const minPart = Math.max(1, opts.minPartBytes ?? 64 * 2 ** 20);
    const units: Unit[] = [];
    for (const job of jobs) {
      planUnits(job, connections, minPart);
      units.push(...job.units);
    }

    let received = 0;
    let filesDone = cachedFiles;
    let lastReport = 0;
    const report = (phase: PullProgress['phase'], force = false) => {
      const now = performance.now();
      if (!opts.onProgress || (!force && now - lastReport < 100)) return;
      lastReport = now;
      opts.onProgress({ doneBytes: present, totalBytes, receivedBytes: received, filesDone, filesTotal: repoFiles.length, phase });
    };
    report('download', true);

    const finishing: Promise<void>[] = [];
    const stallMs = opts.stallMs ?? 60_000;
    const onBytes = (n: number) => { present += n; received += n; report('download'); };
    let next = 0;
    const worker = async () => {
      while (next < units.length && !inner.signal.aborted) {
        const u = units[next++]!;
        await fetchUnit(client, repo, commit, u, stallMs, onBytes);
        const job = u.job;
        if (--job.left === 0) {
          const done = finishJob(job, folder, commit, () => report('verify', true)).then(() => {
            filesDone += 1 + job.links.length;
            present += job.size * job.links.length;
            report('download', true);
          });
          done.catch(() => {}); // handled below, after the downloads still running have finished
          finishing.push(done);
        }
      }
    };
    const results = await Promise.allSettled(Array.from({ length: Math.min(connections, units.length) }, () => worker().catch((e: unknown) => {
      if (!inner.signal.aborted) inner.abort(e);
      throw e;
    })));
    const fin = await Promise.allSettled(finishing);
    // the first real failure (an abort caused by it is not news), saving how far each range got
    await Promise.allSettled(jobs.map(async (j) => { if (j.left > 0) await saveParts(j, true); await (await j.fh?.catch(() => null))?.close().catch(() => {}); }));
    const failed = [...results, ...fin].find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw inner.signal.aborted ? inner.signal.reason : failed.reason;
    report('download', true);
    return { repo, revision, commit, snapshot: path.join(folder, 'snapshots', commit), repoFiles, files, totalBytes, receivedBytes: received };
  } finally {
    opts.signal?.removeEventListener('abort', onOuterAbort);
  }
}

/** The token `hf auth login` saved (HF_TOKEN_PATH, else HF_HOME/token), if any. */
function savedToken(): string | undefined {
  try {
    return fs.readFileSync(process.env.HF_TOKEN_PATH ?? path.join(hfHome(), 'token'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** HF_HUB_OFFLINE: the snapshot the cache has for the revision, filtered as online. */
function fromCache(repo: string, revision: string, cacheDir: string, folder: string, opts: PullOptions): PullResult {
  const snap = cachedSnapshot(folder, revision);
  const all = snap ? snapshotFiles(snap) : [];
  if (!snap || !all.length) throw new HubError(`${repo}@${revision} is not in the cache (${cacheDir}), and offline mode (HF_HUB_OFFLINE) allows no download`);
  const repoFiles = selectFiles(all, { ...(opts.files ? { patterns: opts.files } : {}), ...(opts.quant ? { quant: opts.quant } : {}), where: `the cached ${repo}` });
  const files = repoFiles.map((f) => path.join(snap, ...f.split('/')));
  const totalBytes = files.reduce((a, f) => a + fs.statSync(f).size, 0);
  return { repo, revision, commit: path.basename(snap), snapshot: snap, repoFiles, files, totalBytes, receivedBytes: 0 };
}

/** The commit a revision is at: X-Repo-Commit of a HEAD on one of its files (redirects not followed). */
async function headCommit(client: HubClient, repo: string, revision: string, file: string): Promise<string> {
  return withRetries(client, `${repo}: ${file}`, async () => {
    let url = resolveUrl(client, repo, revision, file);
    for (let hop = 0; hop < 5; hop++) {
      const res = await fetchFollowing(client, url, { method: 'HEAD', follow: false, ...(client.signal ? { signal: client.signal } : {}) });
      await checkRetryable(res);
      const sha = res.headers.get('x-repo-commit');
      const loc = res.headers.get('location');
      // a renamed repository answers with a relative redirect on the hub itself: follow that one
      if (!sha && res.status >= 300 && res.status < 400 && loc && new URL(loc, url).origin === new URL(url).origin) { url = new URL(loc, url).href; continue; }
      if (res.status >= 400) throw await refusal(res, { repo, file, revision, endpoint: client.endpoint, token: !!client.token });
      if (!sha || !isCommit(sha)) throw new HubError(`${repo}: the hub did not say which commit '${revision}' is (no X-Repo-Commit on ${file})`);
      return sha;
    }
    throw new HubError(`${repo}: too many redirects for ${file}`);
  });
}

function resolveUrl(client: HubClient, repo: string, revision: string, file: string): string {
  return `${client.endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${file.split('/').map(encodeURIComponent).join('/')}`;
}

/** The ranges an interrupted download holds: from {incomplete}.parts, else its size (a prefix). */
function rangesDone(incomplete: string, size: number): { base: Range[]; tracked: boolean } {
  let st: fs.Stats;
  try { st = fs.statSync(incomplete); } catch { fs.rmSync(incomplete + PARTS, { force: true }); return { base: [], tracked: false }; }
  try {
    const j = JSON.parse(fs.readFileSync(incomplete + PARTS, 'utf8')) as { size?: unknown; done?: unknown };
    if (j.size === size && Array.isArray(j.done)) {
      const ok = (j.done as unknown[]).every((r) => Array.isArray(r) && r.length === 2 && Number.isSafeInteger(r[0]) && Number.isSafeInteger(r[1]) && 0 <= r[0] && r[0] < r[1] && r[1] <= Math.min(size, st.size));
      if (ok) return { base: merge(j.done as Range[]), tracked: true };
    }
  } catch { /* no parts file: a prefix */ }
  if (st.size > size) { fs.truncateSync(incomplete, 0); return { base: [], tracked: false }; }
  return { base: st.size > 0 ? [[0, st.size]] : [], tracked: false };
}

function merge(ranges: Range[]): Range[] {
  const out: Range[] = [];
  for (const [s, e] of [...ranges].sort((a, b) => a[0] - b[0])) {
    const last = out[out.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/** Split what is missing of a file into at most `connections` ranges of at least `minPart` bytes. */
function planUnits(job: Job, connections: number, minPart: number): void {
  const gaps: Range[] = [];
  let at = 0;
  for (const [s, e] of job.base) { if (s > at) gaps.push([at, s]); at = e; }
  if (at < job.size || job.size === 0) gaps.push([at, job.size]);
  const missing = gaps.reduce((a, [s, e]) => a + e - s, 0);
  const pieces = Math.max(1, Math.min(connections, Math.floor(missing / minPart)));
  const target = Math.ceil(missing / pieces);
  for (const [s, e] of gaps) {
    for (let p = s; p < e || (p === s && s === e); p += target) {
      job.units.push({ job, start: p, end: Math.min(e, p + target), pos: p });
      if (s === e) break;
    }
  }
  job.left = job.units.length;
  job.tracked ||= job.units.length > 1 || (job.units.length === 1 && job.units[0]!.end !== job.size);
}

function fileHandle(job: Job): Promise<fsp.FileHandle> {
  job.fh ??= fsp.open(job.incomplete, fs.existsSync(job.incomplete) ? 'r+' : 'w+');
  return job.fh;
}

/** The hash the hub gives for a file: sha256 of an LFS file; git's blob sha1 (`blob SIZE\0` + bytes) otherwise. */
function newHasher(job: Job): Hash {
  return job.lfs ? createHash('sha256') : createHash('sha1').update(`blob ${job.size}\0`);
}

async function hashRange(fh: fsp.FileHandle, h: Hash, start: number, end: number): Promise<void> {
  const buf = Buffer.allocUnsafe(8 << 20);
  for (let p = start; p < end;) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - p), p);
    if (bytesRead === 0) throw new Error(`unexpected end of file at ${p}`);
    h.update(buf.subarray(0, bytesRead));
    p += bytesRead;
  }
}

/** Fetch one range, resuming from where it got after a drop or a stall. */
async function fetchUnit(client: HubClient, repo: string, commit: string, u: Unit, stallMs: number, onBytes: (n: number) => void): Promise<void> {
  const job = u.job;
  const fh = await fileHandle(job);
  // one range from the start, or one that continues a prefix: hash as the bytes arrive
  if (job.units.length === 1 && u.end === job.size && !job.hasher && (job.base.length === 0 || (job.base.length === 1 && job.base[0]![0] === 0))) {
    job.hasher = newHasher(job);
    await hashRange(fh, job.hasher, 0, u.start);
  }
  if (u.pos >= u.end) return;
  const url = resolveUrl(client, repo, commit, job.file);
  await withRetries(client, `${repo}: ${job.file}`, async (progressed) => {
    const ctl = new AbortController();
    const onAbort = () => ctl.abort(client.signal!.reason);
    client.signal?.addEventListener('abort', onAbort, { once: true });
    let stalled = false;
    let timer = setTimeout(() => { stalled = true; ctl.abort(); }, stallMs);
    const kick = () => { clearTimeout(timer); timer = setTimeout(() => { stalled = true; ctl.abort(); }, stallMs); };
    try {
      const whole = u.pos === 0 && u.end === job.size;
      const res = await fetchFollowing(client, url, { signal: ctl.signal, ...(whole ? {} : { headers: { range: u.end === job.size ? `bytes=${u.pos}-` : `bytes=${u.pos}-${u.end - 1}` } }) });
      await checkRetryable(res);
      if (!res.ok && res.url && new URL(res.url).origin !== new URL(client.endpoint).origin) {
        // the download host (CDN): a signed URL that expired (403) is resolved afresh on the retry
        await res.body?.cancel().catch(() => {});
        if (res.status === 403 || res.status === 410) throw new RetryableStatus(res.status, undefined);
        throw new HubError(`${repo}: ${job.file}: the download host ${new URL(res.url).host} answered ${res.status} ${res.statusText}`, res.status);
      }
      if (!res.ok) throw await refusal(res, { repo, file: job.file, revision: commit, endpoint: client.endpoint, token: !!client.token });
      if (!whole) {
        const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
        if (res.status !== 206 || !cr || Number(cr[1]) !== u.pos) {
          await res.body?.cancel().catch(() => {});
          throw new HubError(`${repo}: ${job.file}: the server ignored the byte range asked for (status ${res.status}, Content-Range '${res.headers.get('content-range') ?? ''}'), so the download cannot resume or be split; try --connections 1 after deleting ${job.incomplete}`);
        }
      }
      if (!res.body) throw new NetworkError('empty response body');
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        kick();
        let chunk = value;
        if (u.pos + chunk.length > u.end) chunk = chunk.subarray(0, u.end - u.pos); // never past the range
        if (chunk.length) {
          await fh.write(chunk, 0, chunk.length, u.pos);
          job.hasher?.update(chunk);
          u.pos += chunk.length;
          onBytes(chunk.length);
          progressed();
          await saveParts(job, false);
        }
        if (u.pos >= u.end) { await reader.cancel().catch(() => {}); break; }
      }
      if (u.pos < u.end) throw new NetworkError(`the connection closed at byte ${u.pos} of ${job.size}`);
    } catch (e) {
      if (stalled) throw new NetworkError(`no data for ${Math.round(stallMs / 1000)} s at byte ${u.pos} of ${job.size}`);
      if (isTransient(e) && !(e instanceof NetworkError)) throw new NetworkError(`the connection dropped at byte ${u.pos} of ${job.size} (${networkReason(e)})`);
      throw e;
    } finally {
      clearTimeout(timer);
      client.signal?.removeEventListener('abort', onAbort);
    }
  });
}

/** Write {incomplete}.parts (the ranges present) every few seconds, and when stopping. */
async function saveParts(job: Job, now: boolean): Promise<void> {
  if (!job.tracked) return;
  const t = performance.now();
  if (!now && (job.saving || t - job.lastSave < 2000)) return;
  job.lastSave = t;
  const write = async () => {
    const done = merge([...job.base.map((r): Range => [r[0], r[1]]), ...job.units.filter((u) => u.pos > u.start).map((u): Range => [u.start, u.pos])]);
    const tmp = `${job.incomplete}${PARTS}.tmp`;
    await fsp.writeFile(tmp, JSON.stringify({ size: job.size, done }));
    await fsp.rename(tmp, job.incomplete + PARTS);
  };
  const p = (job.saving ?? Promise.resolve()).then(write);
  job.saving = p;
  try {
    await p;
  } finally {
    if (job.saving === p) job.saving = null;
  }
}

/** A file whose ranges are all in: check its hash, move it into blobs/, link it into the snapshot. */
async function finishJob(job: Job, folder: string, commit: string, verifying: () => void): Promise<void> {
  const fh = await fileHandle(job);
  const size = (await fh.stat()).size;
  if (size !== job.size) { await fh.close(); job.fh = null; throw new HubError(`${job.file}: downloaded ${size} bytes, the hub says ${job.size}; run the same command again`); }
  let h = job.hasher;
  if (!h) {
    verifying();
    h = newHasher(job);
    await hashRange(fh, h, 0, job.size);
  }
  await fh.close();
  job.fh = null;
  const got = h.digest('hex');
  const want = job.lfs ? job.entry.lfs!.oid.toLowerCase() : job.entry.oid.toLowerCase();
  if (got !== want) {
    fs.rmSync(job.incomplete, { force: true });
    fs.rmSync(job.incomplete + PARTS, { force: true });
    throw new ChecksumError(job.file, want, got, job.lfs ? 'sha256' : 'git blob sha1');
  }
  fs.renameSync(job.incomplete, path.join(folder, 'blobs', job.etag));
  fs.rmSync(job.incomplete + PARTS, { force: true });
  for (const f of [job.file, ...job.links]) linkIntoSnapshot(folder, commit, f, job.etag);
}

/** Refuse to start when the disk holding the cache has less free space than is left to fetch. */
async function checkDisk(dir: string, needed: number, statfs: NonNullable<PullOptions['statfs']> = (d) => fsp.statfs(d)): Promise<void> {
  let d = dir;
  while (!fs.existsSync(d) && path.dirname(d) !== d) d = path.dirname(d);
  const s = await statfs(d);
  const free = Number(s.bavail) * Number(s.bsize);
  if (needed > free) throw new DiskSpaceError(dir, needed, free);
}

/** The cached snapshot's commit for a revision, or null (for callers that only want to know). */
export function cachedCommit(repo: string, revision = 'main', cacheDir = hubCacheDir()): string | null {
  return readRef(repoFolder(cacheDir, parseRepoId(repo)), revision);
}
