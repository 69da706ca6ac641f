/**
 * Which files of a repository to fetch or load: FILES patterns, and GGUF quants. A GGUF repository keeps
 * one model per quant, named in a folder or in the file name (`Q4_K_M/grok-1-Q4_K_M-00001-of-00009.gguf`,
 * `grok-1.Q8_0.gguf`); the quant is the path component that looks like one, compared case-insensitively.
 */

/** A path component that names a llama.cpp quant or a float type: Q4_K_M, IQ2_XS, Q8_0, F16, BF16… */
const QUANT_RE = /^(?:I?Q\d+(?:_[A-Z0-9]+)*|F16|BF16|F32)$/i;

/** The quant a GGUF path names (upper case), or '' when none of its components looks like one. */
export function quantOf(file: string): string {
  const parts = file.split(/[/\\.-]/);
  for (let i = parts.length - 1; i >= 0; i--) if (QUANT_RE.test(parts[i]!)) return parts[i]!.toUpperCase();
  return '';
}

export const isGguf = (file: string): boolean => file.toLowerCase().endsWith('.gguf');

/** The quants of a file list's GGUF files, sorted; '' stands for GGUF files that name none. */
export function quantsOf(files: readonly string[]): string[] {
  return [...new Set(files.filter(isGguf).map(quantOf))].sort();
}

/**
 * The GGUF files of `quant`: those naming it exactly, else those of the one quant it is a prefix of
 * (`Q4_K` → `Q4_K_M` when the repository has no plain Q4_K and one Q4_K_*). Throws listing the quants
 * there are when none or several match.
 */
export function filesOfQuant(files: readonly string[], quant: string, where: string): string[] {
  const want = quant.toUpperCase();
  const quants = quantsOf(files);
  let pick = quants.includes(want) ? want : undefined;
  if (!pick) {
    const near = quants.filter((q) => q.startsWith(`${want}_`));
    if (near.length === 1) pick = near[0];
    else if (near.length > 1) throw new Error(`${where}: --quant ${quant} matches several quants (${near.join(', ')}): name one`);
  }
  if (!pick) {
    const named = quants.filter((q) => q !== '');
    throw new Error(named.length
      ? `${where} has no ${quant} GGUF; quants available: ${named.join(', ')}`
      : `${where} has no GGUF files named by quant, so --quant ${quant} selects nothing`);
  }
  return files.filter((f) => isGguf(f) && quantOf(f) === pick);
}

/** A FILES pattern as a test: an exact path, a folder (everything under it), or a glob (`*` within a component, `**` across). */
export function pathMatcher(pattern: string): (file: string) => boolean {
  const p = pattern.replace(/^\.?\/+/, '').replace(/\/+$/, '');
  if (!/[*?]/.test(p)) return (f) => f === p || f.startsWith(`${p}/`);
  const re = new RegExp(`^${p.split(/(\*\*|\*|\?)/).map((s) => s === '**' ? '.*' : s === '*' ? '[^/]*' : s === '?' ? '[^/]' : s.replace(/[.+^${}()|[\]\\]/g, '\\$&')).join('')}$`);
  return (f) => re.test(f);
}

/**
 * The files to fetch: FILES patterns (each must match something), then --quant among the GGUF files; with
 * neither, everything — unless the repository holds GGUFs of several quants, which would be a mistake to
 * fetch all at once.
 */
export function selectFiles(all: readonly string[], opts: { patterns?: readonly string[]; quant?: string; where: string }): string[] {
  let files = [...all];
  if (opts.patterns?.length) {
    const chosen = new Set<string>();
    for (const pat of opts.patterns) {
      const m = pathMatcher(pat);
      const hit = files.filter(m);
      if (!hit.length) throw new NotFoundInRepoError(`${opts.where}: no file matches '${pat}' (it has ${describe(all)})`);
      for (const f of hit) chosen.add(f);
    }
    files = files.filter((f) => chosen.has(f));
  }
  if (opts.quant) return filesOfQuant(files, opts.quant, opts.where);
  if (!opts.patterns?.length) {
    const quants = quantsOf(files).filter((q) => q !== '');
    if (quants.length > 1) {
      throw new Error(`${opts.where} holds GGUFs of ${quants.length} quants (${quants.join(', ')}): choose one with --quant, e.g. --quant ${quants.includes('Q4_K_M') ? 'Q4_K_M' : quants[0]}`);
    }
  }
  return files;
}

/** A file list in a few words, for messages: the top-level entries, at most 8. */
export function describe(files: readonly string[]): string {
  const top = [...new Set(files.map((f) => (f.includes('/') ? `${f.slice(0, f.indexOf('/'))}/` : f)))].sort();
  return top.length ? `${top.slice(0, 8).join(', ')}${top.length > 8 ? `, … (${top.length} entries)` : ''}` : 'no files';
}

/** A FILES pattern that matches nothing. */
export class NotFoundInRepoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotFoundInRepoError';
  }
}
