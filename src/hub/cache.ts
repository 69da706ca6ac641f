/**
 * The Hugging Face hub cache, laid out exactly as huggingface_hub lays it out, so that files fetched by
 * `huggingface-cli`/`hf` are reused here and ours are used there:
 *
 *   $HF_HUB_CACHE | $HF_HOME/hub | ~/.cache/huggingface/hub
 *     models--{org}--{name}/
 *       blobs/{etag}                  the file's bytes; etag = sha256 for LFS files, the git blob sha1 otherwise
 *       blobs/{etag}.incomplete       a download in progress (resumed from its size with Range)
 *       snapshots/{commit}/{path}     relative links to ../../blobs/{etag} (one ../ more per folder in path)
 *       refs/{revision}               the commit the revision (branch, tag) last resolved to
 *
 * `resolveModelPath` turns a repo id given as a model (`--model xai-org/grok-1`) into the cached snapshot.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isGguf, quantOf, quantsOf, filesOfQuant } from './select.js';

/** The hub cache folder the environment names (huggingface_hub's rules). */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HUGGINGFACE_HUB_CACHE) return env.HUGGINGFACE_HUB_CACHE; // the older name, still read by huggingface_hub
  return path.join(hfHome(env), 'hub');
}

export function hfHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.HF_HOME ?? path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'huggingface');
}

/** HF_HUB_OFFLINE=1 (or true/yes/on): use the cache alone. */
export function offlineFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return /^(1|true|yes|on)$/i.test(env.HF_HUB_OFFLINE ?? '');
}

const REPO_RE = /^(?:[A-Za-z0-9][\w.-]*\/)?[A-Za-z0-9][\w.-]*$/;

/**
 * A repository id as the hub spells it: `org/name` (or a bare `name`); a hub URL
 * (`https://huggingface.co/org/name`) is accepted too. Throws on anything else.
 */
export function parseRepoId(s: string): string {
  const id = s.replace(/^(?:https?:\/\/)?(?:huggingface\.co|hf\.co)\//, '').replace(/\/+$/, '');
  if (!REPO_RE.test(id) || id.includes('--') || id.includes('..')) {
    throw new Error(`'${s}' is not a Hugging Face repository id: expected org/name, e.g. xai-org/grok-1`);
  }
  return id;
}

/** models--org--name under the cache. */
export function repoFolder(cacheDir: string, repo: string): string {
  return path.join(cacheDir, `models--${repo.split('/').join('--')}`);
}

export const isCommit = (rev: string): boolean => /^[0-9a-f]{40}$/.test(rev);

/** refs/{revision}'s commit, or null. */
export function readRef(folder: string, revision: string): string | null {
  if (isCommit(revision)) return revision;
  try {
    const sha = fs.readFileSync(path.join(folder, 'refs', revision), 'utf8').trim();
    return isCommit(sha) ? sha : null;
  } catch {
    return null;
  }
}

export function writeRef(folder: string, revision: string, commit: string): void {
  if (isCommit(revision)) return; // huggingface_hub writes refs only for names
  const ref = path.join(folder, 'refs', revision);
  fs.mkdirSync(path.dirname(ref), { recursive: true });
  let old = '';
  try { old = fs.readFileSync(ref, 'utf8'); } catch { /* first time */ }
  if (old.trim() !== commit) fs.writeFileSync(ref, commit);
}

/**
 * The snapshot folder a revision points to in the cache: refs/{revision} when it exists, else (a cache
 * written without refs) the most recently written snapshot when the revision is 'main'. Null if none.
 */
export function cachedSnapshot(folder: string, revision = 'main'): string | null {
  const commit = readRef(folder, revision);
  if (commit) {
    const dir = path.join(folder, 'snapshots', commit);
    return fs.existsSync(dir) ? dir : null;
  }
  if (revision !== 'main') return null;
  let snaps: string[];
  try {
    snaps = fs.readdirSync(path.join(folder, 'snapshots')).map((s) => path.join(folder, 'snapshots', s));
  } catch {
    return null;
  }
  snaps.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  return snaps[0] ?? null;
}

/** Every file of a snapshot (repo-relative, '/'-separated) whose link leads to a blob that is there. */
export function snapshotFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      let st: fs.Stats;
      try { st = fs.statSync(path.join(dir, r)); } catch { continue; } // a link to a blob that is gone
      if (st.isDirectory()) walk(r);
      else if (st.isFile()) out.push(r);
    }
  };
  walk('');
  return out.sort();
}

/** Link snapshots/{commit}/{file} to blobs/{etag} as huggingface_hub does: relative, replacing what was there. */
export function linkIntoSnapshot(folder: string, commit: string, file: string, etag: string): string {
  const pointer = path.join(folder, 'snapshots', commit, ...file.split('/'));
  fs.mkdirSync(path.dirname(pointer), { recursive: true });
  const target = path.relative(path.dirname(pointer), path.join(folder, 'blobs', etag));
  try {
    if (fs.readlinkSync(pointer) === target) return pointer;
  } catch { /* absent or not a link */ }
  fs.rmSync(pointer, { force: true });
  fs.symlinkSync(target, pointer);
  return pointer;
}

/** The snapshot file at `file`, if its blob is there (the link resolves to a regular file). */
export function cachedFile(folder: string, commit: string, file: string): string | null {
  const p = path.join(folder, 'snapshots', commit, ...file.split('/'));
  try {
    return fs.statSync(p).isFile() ? p : null;
  } catch {
    return null;
  }
}

/** `org/name` or `org/name:QUANT` as a model argument (anything else is a path). */
const MODEL_REPO_RE = /^([A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*?)(?::([A-Za-z0-9_]+))?$/;

/**
 * A `--model` argument as a local path. A path that exists is returned as given. `org/name` (or
 * `org/name:QUANT`) that is not a path is looked up in the hub cache: a GGUF repository gives its one
 * cached quant's model (the first part of a split set; the quant named after ':' when several are
 * cached), any other repository its snapshot folder (a ckpt-0 parent, a safetensors folder). Anything
 * else is returned unchanged, for the loader to report.
 */
export function resolveModelPath(model: string, opts: { cacheDir?: string; revision?: string } = {}): string {
  if (fs.existsSync(model)) return model;
  const m = MODEL_REPO_RE.exec(model);
  if (!m || /\.(gguf|safetensors|json|model)$/i.test(m[1]!) || m[1]!.includes('--')) return model;
  const repo = m[1]!;
  const quant = m[2];
  const cache = opts.cacheDir ?? hubCacheDir();
  const snap = cachedSnapshot(repoFolder(cache, repo), opts.revision ?? 'main');
  const files = snap ? snapshotFiles(snap) : [];
  if (!snap || !files.length) {
    throw new Error(`${model}: no such file or directory, and ${repo} is not in the Hugging Face cache (${cache}); download it with: grok pull ${repo}${quant ? ` --quant ${quant}` : ''}`);
  }
  const ggufs = files.filter(isGguf);
  if (!ggufs.length) {
    if (quant) throw new Error(`${model}: the cached ${repo} holds no GGUF files, so ':${quant}' selects nothing; use --model ${repo}`);
    return snap;
  }
  let chosen: string[];
  if (quant) {
    chosen = filesOfQuant(ggufs, quant, `the cached ${repo}`);
  } else {
    const quants = quantsOf(ggufs);
    if (quants.length > 1) {
      const named = quants.map((q) => q || '(unnamed)');
      throw new Error(`${repo}: the cache holds ${quants.length} quants (${named.join(', ')}): choose one, e.g. --model ${repo}:${quants.find((q) => q) ?? ''}`);
    }
    chosen = ggufs.filter((f) => quantOf(f) === quants[0]);
  }
  const sets = [...new Set(chosen.map((f) => f.replace(/-\d{5}-of-\d{5}\.gguf$/i, '')))];
  if (sets.length > 1) throw new Error(`${repo}: the cache holds ${sets.length} GGUF models of that quant (${sets.join(', ')}): pass the file's path as --model`);
  return path.join(snap, ...chosen[0]!.split('/'));
}
