/**
 * Format detection: the one `--model` argument takes a ckpt-0 directory (or its parent), a GGUF file
 * (or one part of a split set), a safetensors file, index or directory. Each branch hands over to the
 * format's reader.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FormatError } from '../base/errors.js';
import { checkContained, modelRoot } from '../base/files.js';
import { findCkptDir, openCkpt } from './ckpt.js';
import { openGguf } from './gguf.js';
import { openSafetensors, SAFETENSORS_INDEX } from './safetensors.js';
import { type ModelSource } from './tensor-ref.js';

type Opener = { readonly name: string; matches(p: string, isDir: boolean): boolean; open(p: string): ModelSource };

/** The GGUF files of a folder: one model (one file, or the parts of one split set), else an error. */
function ggufInFolder(dir: string): string | undefined {
  const found = fs.readdirSync(dir).filter((f) => f.toLowerCase().endsWith('.gguf')).sort();
  if (found.length === 0) return undefined;
  const sets = new Set(found.map((f) => f.replace(/-\d{5}-of-\d{5}\.gguf$/i, '')));
  if (sets.size > 1) throw new FormatError(dir, `holds ${sets.size} GGUF models (${found.slice(0, 4).join(', ')}${found.length > 4 ? ', …' : ''}): name the file to use`);
  return path.join(dir, found[0]!);
}

const openers: Opener[] = [
  { name: 'ckpt-0', matches: (p, isDir) => isDir && findCkptDir(p) !== undefined, open: openCkpt },
  { name: 'gguf', matches: (p, isDir) => !isDir && p.toLowerCase().endsWith('.gguf'), open: openGguf },
  {
    name: 'a folder holding one .gguf',
    matches: (p, isDir) => isDir && ggufInFolder(p) !== undefined,
    open: (p) => { const f = ggufInFolder(p)!; checkContained(modelRoot(p), f); return openGguf(f); },
  },
  {
    name: 'safetensors',
    matches: (p, isDir) => isDir
      ? fs.existsSync(path.join(p, SAFETENSORS_INDEX)) || fs.readdirSync(p).some((f) => f.endsWith('.safetensors'))
      : p.endsWith('.safetensors') || p.endsWith('.safetensors.index.json'),
    open: openSafetensors,
  },
];

export function openModel(p: string): ModelSource {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    throw new FormatError(p, 'no such file or directory');
  }
  for (const o of openers) {
    if (o.matches(p, st.isDirectory())) return o.open(p);
  }
  throw new FormatError(
    p,
    `not a model this tool can read (looked for: ${openers.map((o) => o.name).join(', ')}). ` +
      'Give a ckpt-0 directory (or its parent), a .gguf file (or a folder holding one), or a .safetensors file / directory.',
  );
}
