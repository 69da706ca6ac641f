// Test text for the tokenizer benchmark and the differential test against SentencePiece.
//
// Benchmark text (buildBenchText): deterministic, interleaved in ~4 KB chunks from
//  - English prose: /usr/share/common-licenses/* and the Markdown docs under node_modules/ (sorted paths);
//  - code: node_modules/typescript/lib/typescript.js and /usr/lib/python3*/ *.py (sorted paths);
//  - generated: number tables, whitespace runs (spaces, tabs, newlines, \r\n), and multilingual text made of
//    vocabulary pieces of other scripts (CJK, Japanese, Korean, Cyrillic, Arabic, Devanagari, Thai, Greek…)
//    with emoji (ZWJ sequences, skin tones, flags) and rare code points (byte fallback).
// Files that are missing on a machine are skipped, so numbers are only comparable on the same machine.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { mulberry32 as rng } from '../test/random.js';

export { rng };

type Rand = () => number;
const pick = <T>(r: Rand, a: readonly T[]): T => a[Math.floor(r() * a.length)];
const int = (r: Rand, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));

function walk(dir: string, filter: (p: string) => boolean, out: string[], depth = 0): void {
  if (depth > 6 || !existsSync(dir)) return;
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    let st;
    try {
      st = statSync(p);
    } catch {
      continue;
    }
    if (st.isDirectory()) walk(p, filter, out, depth + 1);
    else if (st.isFile() && filter(p)) out.push(p);
  }
}

function readUpTo(files: string[], budget: number): string {
  const parts: string[] = [];
  let n = 0;
  for (const f of files) {
    if (n >= budget) break;
    const t = readFileSync(f, 'utf8').slice(0, budget - n);
    parts.push(t);
    n += t.length;
  }
  return parts.join('\n');
}

export const EMOJI = ['😀', '🤖', '👍🏽', '👨‍👩‍👧‍👦', '🇯🇵', '❤️', '🔥', '🎉', '🧑🏿‍💻', '✅', '🚀', '🙈', '🏳️‍🌈', '💯', '🤷‍♀️'];

/** Script ranges used to pick vocabulary pieces and random characters. */
export const SCRIPTS: [string, RegExp][] = [
  ['CJK', /[\u4e00-\u9fff]/],
  ['Japanese', /[\u3040-\u30ff]/],
  ['Korean', /[\uac00-\ud7af]/],
  ['Cyrillic', /[\u0400-\u04ff]/],
  ['Arabic', /[\u0600-\u06ff]/],
  ['Devanagari', /[\u0900-\u097f]/],
  ['Thai', /[\u0e00-\u0e7f]/],
  ['Greek', /[\u0370-\u03ff]/],
  ['Hebrew', /[\u0590-\u05ff]/],
  ['Latin-ext', /[\u00c0-\u024f]/],
];

/** Vocabulary pieces grouped by script (with `▁` turned back into a space). */
export function piecesByScript(pieces: string[]): string[][] {
  return SCRIPTS.map(([, re]) => pieces.filter((p) => re.test(p)).map((p) => p.replaceAll('\u2581', ' ')));
}

function multilingual(r: Rand, byScript: string[][], chars: number): string {
  let s = '';
  while (s.length < chars) {
    const group = byScript[int(r, 0, byScript.length - 1)];
    const words = int(r, 3, 40);
    for (let i = 0; i < words && group.length > 0; i++) s += pick(r, group);
    const x = r();
    if (x < 0.3) s += ' ' + pick(r, EMOJI) + ' ';
    else if (x < 0.4) s += String.fromCodePoint(int(r, 0x2000, 0x2bff));
    else if (x < 0.45) s += String.fromCodePoint(int(r, 0x20000, 0x2a6df)); // CJK ext. B: byte fallback
    s += pick(r, ['。', '. ', '، ', '\n', '! ', ', ', '\n\n', '？']);
  }
  return s;
}

function numbers(r: Rand, chars: number): string {
  let s = '';
  while (s.length < chars) {
    const cols = int(r, 2, 8);
    for (let c = 0; c < cols; c++) {
      const v = r() < 0.5 ? String(int(r, 0, 99999)) : (r() * 10 ** int(r, -3, 9)).toFixed(int(r, 0, 6));
      s += (c ? pick(r, ['\t', ' | ', ', ', '  ']) : '') + v;
    }
    s += pick(r, ['\n', '\r\n', '\n']);
  }
  return s;
}

function whitespace(r: Rand, chars: number): string {
  let s = '';
  while (s.length < chars) {
    s += pick(r, [' ', '\t', '\n', '\r\n', '\u3000', '\u00a0']).repeat(int(r, 1, 40));
    s += pick(r, ['x', 'word', '{', '}', 'if (a) {', '# heading', '-', '*']);
  }
  return s;
}

/** About `bytes` UTF-8 bytes of mixed text (see the header for the sources). */
export function buildBenchText(pieces: string[], bytes = 4 << 20, seed = 1): string {
  const r = rng(seed);
  const proseFiles: string[] = [];
  walk('/usr/share/common-licenses', () => true, proseFiles);
  walk(path.resolve('node_modules'), (p) => p.endsWith('.md'), proseFiles);
  const codeFiles: string[] = [path.resolve('node_modules/typescript/lib/typescript.js')].filter(existsSync);
  for (const d of readdirSync('/usr/lib').filter((d) => /^python3/.test(d)).sort()) walk(path.join('/usr/lib', d), (p) => p.endsWith('.py'), codeFiles);
  const prose = readUpTo(proseFiles, Math.floor(bytes * 0.35));
  // code: half TypeScript's compiler, half Python's standard library
  const code = readUpTo(codeFiles.slice(0, 1), Math.floor(bytes * 0.12)) + readUpTo(codeFiles.slice(1), Math.floor(bytes * 0.13));
  const byScript = piecesByScript(pieces);
  const gen = [numbers(r, Math.floor(bytes * 0.1)), whitespace(r, Math.floor(bytes * 0.05)), multilingual(r, byScript, Math.floor(bytes * 0.1))];
  // Interleave 4 KB chunks so that caches and branch predictors see mixed input.
  const sources = [prose, code, ...gen];
  const pos = sources.map(() => 0);
  const out: string[] = [];
  let total = 0;
  while (total < bytes && sources.some((s, i) => pos[i] < s.length)) {
    for (let i = 0; i < sources.length; i++) {
      if (pos[i] >= sources[i].length) continue;
      let end = Math.min(sources[i].length, pos[i] + 4096);
      if (end < sources[i].length && /[\udc00-\udfff]/.test(sources[i][end])) end++; // keep surrogate pairs whole
      const chunk = sources[i].slice(pos[i], end);
      pos[i] = end;
      out.push(chunk);
      total += Buffer.byteLength(chunk);
    }
  }
  return out.join('');
}

// ---------------------------------------------------------------------------------------------------
// Random strings for the differential test

const ASCII_WORDS = ['the', 'The', 'answer', 'to', 'life', 'hello', 'world', 'function', 'return', 'const', 'x', 'y', 'foo_bar', 'HTTP', 'JSON', 'don\'t', 'e.g.', 'naïve', 'café', 'Straße', 'œuvre'];
const SPECIAL = ['<|separator|>', '<|mask|>', '<|control1|>', '<|control20|>', '<|control21|>', '<|sep', '<|', '|>', '[BOS]', '[EOS]', '[PAD]', '[UNK]', '<0x41>', '<s>', '</s>', '\u2581', '\u2581\u2581', '\uFFFD', '\uFEFF', '\u200b', '\u200d', '\u0301', '\u00a0', '\u3000', '\u2028', '\u0000', '\u007f', '\r', '\r\n', '\f', '\v'];

/** One random well-formed string mixing every kind of input the tokenizer meets. */
export function randomText(r: Rand, byScript: string[][], vocabText: string[]): string {
  const parts: string[] = [];
  const n = int(r, 0, 25);
  for (let i = 0; i < n; i++) {
    const x = r();
    if (x < 0.15) parts.push(pick(r, ASCII_WORDS));
    else if (x < 0.3) parts.push(pick(r, vocabText));
    else if (x < 0.4) parts.push(' '.repeat(int(r, 1, 20)));
    else if (x < 0.45) parts.push('\n'.repeat(int(r, 1, 14)));
    else if (x < 0.5) parts.push('\t'.repeat(int(r, 1, 11)));
    else if (x < 0.57) parts.push(String(int(r, 0, 10 ** int(r, 1, 9))));
    else if (x < 0.67) {
      const g = pick(r, byScript);
      if (g.length) for (let k = int(r, 1, 6); k > 0; k--) parts.push(pick(r, g));
    } else if (x < 0.73) parts.push(pick(r, EMOJI));
    else if (x < 0.8) parts.push(pick(r, SPECIAL));
    else if (x < 0.87) parts.push(String.fromCharCode(int(r, 0, 0x7f)));
    else if (x < 0.94) {
      let cp = int(r, 0x80, 0x10ffff);
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xe000;
      parts.push(String.fromCodePoint(cp));
    } else parts.push(pick(r, ['.', ',', '!', '?', '(', ')', '{', '}', '"', "'", '-', '_', '/', '\\', '#', '@', '$', '%', '^', '&', '*']));
    if (r() < 0.4) parts.push(' ');
  }
  return parts.join('');
}

/** Random bytes mixing valid UTF-8 text with malformed sequences (stray continuation bytes, truncated
 *  characters, overlong forms, encoded surrogates, bytes > F4). */
export function randomBytes(r: Rand, byScript: string[][], vocabText: string[]): Uint8Array {
  const out: number[] = [];
  const n = int(r, 1, 16);
  for (let i = 0; i < n; i++) {
    const x = r();
    if (x < 0.4) out.push(...Buffer.from(randomText(r, byScript, vocabText).slice(0, 12)));
    else if (x < 0.55) out.push(int(r, 0x80, 0xff));
    else if (x < 0.65) out.push(...Buffer.from(pick(r, EMOJI)).subarray(0, int(r, 1, 3)));
    else if (x < 0.72) out.push(0xc0, int(r, 0x80, 0xbf)); // overlong 2-byte
    else if (x < 0.78) out.push(0xe0, int(r, 0x80, 0x9f), int(r, 0x80, 0xbf)); // overlong 3-byte
    else if (x < 0.84) out.push(0xed, int(r, 0xa0, 0xbf), int(r, 0x80, 0xbf)); // surrogate
    else if (x < 0.9) out.push(0xf4, int(r, 0x90, 0xbf), 0x80, 0x80); // > U+10FFFF
    else out.push(int(r, 0xf5, 0xff));
  }
  return Uint8Array.from(out);
}

/** Random id lists weighted towards byte pieces, control/special ids and the first positions. */
export function randomIds(r: Rand, vocabSize: number, byteIds: number[], special: number[]): number[] {
  const n = int(r, 0, 20);
  const ids: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = r();
    if (x < 0.4) ids.push(pick(r, byteIds));
    else if (x < 0.55) ids.push(pick(r, special));
    else ids.push(int(r, 0, vocabSize - 1));
  }
  return ids;
}
