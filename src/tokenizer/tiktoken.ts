// tiktoken-style byte-level BPE: Grok-2's `tokenizer.tok.json`, byte-exact with tiktoken's Rust core as SGLang
// configures it (sglang srt/tokenizer/tiktoken_tokenizer.py; tiktoken src/lib.rs CoreBPE::encode, _byte_pair_merge).
//
// File: {"regular_tokens": [{"token": id, "bytes": [..]}], "special_tokens": [..], "word_split": "V1",
// "pat_str"?: override of V1's pattern, "vocab_size"?: ids are exactly 0..vocab_size-1}. A regular token's id is
// its merge rank. Specials may sit anywhere in the id space (Grok-2's fixtures put them first).
//
// encode: the leftmost allowed special in the text is emitted as its id; each stretch between specials is split
// by the word pattern on its own (it never sees across a special); a piece whose whole byte string is a token is
// that id, otherwise its bytes are merged pairwise, lowest rank first, leftmost on equal ranks.
// decode: the tokens' bytes joined, then UTF-8 with one U+FFFD per maximal invalid subsequence and a leading
// BOM kept (Python bytes.decode('utf-8', 'replace') = TextDecoder with ignoreBOM).
//
// All of encoding works on a "binary string": the UTF-8 bytes of the text, one byte per UTF-16 unit, so a piece
// is a range of it, looked up by a hash of its bytes (no substring). The V1 pattern is a hand-written scanner (pieceEndV1) with the
// Rust regex semantics tiktoken has: `\s` is Unicode White_Space (U+0085 yes, U+FEFF no, unlike JavaScript's
// `\s`), `(?i:'s…)` uses simple case folding (`'ſ` is `'s`). A pat_str override is translated to a JavaScript
// RegExp (patternToRegExp), which the tests also use as the reference for the scanner.

import { readSmallFile } from '../base/files.js';
import { FormatError } from '../base/errors.js';
import type { StreamDecoder } from './sentencepiece.js';

/** SGLang's PAT_STR_B, word_split "V1": cl100k's pattern with every digit its own piece. */
export const V1_PATTERN = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;

/**
 * The specials SGLang lets text contain (tiktoken_tokenizer.py: pad, separator, eos, reserved_3..127,
 * control1..704, with disallowed_special = ()). Any other special in a file is read as plain text.
 */
export function sglangAllowsSpecial(text: string): boolean {
  if (text === '<|pad|>' || text === '<|separator|>' || text === '<|eos|>') return true;
  const r = /^<\|reserved_([1-9][0-9]{0,2})\|>$/.exec(text);
  if (r) return Number(r[1]) >= 3 && Number(r[1]) <= 127;
  const c = /^<\|control([1-9][0-9]{0,2})\|>$/.exec(text);
  return c !== null && Number(c[1]) <= 704;
}

export interface TiktokenOptions {
  /** which specials encode() recognises in text: SGLang's set (default), all of the file's, or none */
  allowedSpecial?: 'sglang' | 'all' | 'none';
  /** pieces of at least this many bytes are merged with a heap (O(n log n)); shorter ones as tiktoken does (O(n²)) */
  heapFrom?: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Character classes for the V1 scanner: Unicode L, N, White_Space, and CR/LF, one byte per code point.

const C_L = 1;
const C_N = 2;
const C_WS = 4;
const C_NL = 8;
/** Unicode White_Space (PropList.txt), what Rust's `\s` means; JavaScript's `\s` adds U+FEFF and drops U+0085. */
const WHITE_SPACE: readonly [number, number][] = [
  [0x09, 0x0d], [0x20, 0x20], [0x85, 0x85], [0xa0, 0xa0], [0x1680, 0x1680], [0x2000, 0x200a],
  [0x2028, 0x2029], [0x202f, 0x202f], [0x205f, 0x205f], [0x3000, 0x3000],
];
const WS_CLASS = String.raw`\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000`;

const planes: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(17);

/** Classes of the 65536 code points of one plane, from the engine's Unicode tables (\p{L}, \p{N}). */
function buildPlane(p: number): Uint8Array {
  const t = new Uint8Array(65536);
  // One string holding the whole plane (surrogates as NUL in plane 0), scanned once per class.
  const units = new Uint16Array(p === 0 ? 65536 : 131072);
  for (let i = 0; i < 65536; i++) {
    if (p === 0) units[i] = i >= 0xd800 && i < 0xe000 ? 0 : i;
    else {
      const cp = (p << 16) + i - 0x10000;
      units[2 * i] = 0xd800 + (cp >> 10);
      units[2 * i + 1] = 0xdc00 + (cp & 0x3ff);
    }
  }
  const s = Buffer.from(units.buffer).toString('utf16le');
  const w = p === 0 ? 1 : 2;
  for (const [re, bit] of [[/\p{L}+/gu, C_L], [/\p{N}+/gu, C_N]] as const) {
    for (const m of s.matchAll(re)) for (let k = m.index / w, e = (m.index + m[0].length) / w; k < e; k++) t[k] |= bit;
  }
  if (p === 0) {
    for (const [a, b] of WHITE_SPACE) for (let c = a; c <= b; c++) t[c] |= C_WS;
    t[10] |= C_NL;
    t[13] |= C_NL;
  }
  return (planes[p] = t);
}

const PLANE0 = buildPlane(0);

/** Class of the code point whose UTF-8 starts at s[i] (s is valid UTF-8), shifted left 3, or'ed with its byte length. */
function info(s: string, i: number): number {
  const b0 = s.charCodeAt(i);
  if (b0 < 0x80) return (PLANE0[b0] << 3) | 1;
  if (b0 < 0xe0) return (PLANE0[((b0 & 0x1f) << 6) | (s.charCodeAt(i + 1) & 0x3f)] << 3) | 2;
  if (b0 < 0xf0) return (PLANE0[((b0 & 0x0f) << 12) | ((s.charCodeAt(i + 1) & 0x3f) << 6) | (s.charCodeAt(i + 2) & 0x3f)] << 3) | 3;
  const cp = ((b0 & 0x07) << 18) | ((s.charCodeAt(i + 1) & 0x3f) << 12) | ((s.charCodeAt(i + 2) & 0x3f) << 6) | (s.charCodeAt(i + 3) & 0x3f);
  const plane = planes[cp >> 16] ?? buildPlane(cp >> 16);
  return (plane[cp & 0xffff] << 3) | 4;
}

/** End of the run of code points of class `bit` from i (≤ e). */
function runEnd(s: string, i: number, e: number, bit: number): number {
  while (i < e) {
    const x = info(s, i);
    if (((x >> 3) & bit) === 0) break;
    i += x & 7;
  }
  return i;
}

/** End of the run of "other" code points (not L, N or White_Space) from i. */
function otherRunEnd(s: string, i: number, e: number): number {
  while (i < e) {
    const x = info(s, i);
    if (((x >> 3) & (C_L | C_N | C_WS)) !== 0) break;
    i += x & 7;
  }
  return i;
}

/**
 * The code point at s[i] case-folded if it folds to an ASCII letter (Unicode simple case folding: A–Z to a–z, and
 * ſ U+017F to s; K U+212A folds to k, which no contraction uses), else itself when ASCII: folded | (length << 8); 0 if none.
 */
function foldedAt(s: string, i: number, e: number): number {
  if (i >= e) return 0;
  const b = s.charCodeAt(i);
  if (b < 0x80) return (b >= 0x41 && b <= 0x5a ? b + 32 : b) | (1 << 8);
  if (b === 0xc5 && i + 1 < e && s.charCodeAt(i + 1) === 0xbf) return 0x73 | (2 << 8);
  return 0;
}

/** `(?i:'s|'t|'re|'ve|'m|'ll|'d)` after the apostrophe at i - 1: the end of the match, or -1. */
function contractionEnd(s: string, i: number, e: number): number {
  const f = foldedAt(s, i, e);
  const j = i + (f >> 8);
  switch (f & 0xff) {
    case 0x73: case 0x74: case 0x6d: case 0x64: // s t m d
      return j;
    case 0x72: case 0x76: { // re ve
      const g = foldedAt(s, j, e);
      return (g & 0xff) === 0x65 ? j + (g >> 8) : -1;
    }
    case 0x6c: { // ll
      const g = foldedAt(s, j, e);
      return (g & 0xff) === 0x6c ? j + (g >> 8) : -1;
    }
    default:
      return -1;
  }
}

/**
 * The end of the V1 piece that starts at i in the segment s[…e) (a binary string), i.e. the leftmost-first match of
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N} | ?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
 * Every code point starts some alternative, so pieces tile the segment.
 */
export function pieceEndV1(s: string, i: number, e: number): number {
  const c = s.charCodeAt(i);
  if (c === 0x27) {
    const k = contractionEnd(s, i + 1, e);
    if (k > 0) return k;
  }
  const x = info(s, i);
  const cls = x >> 3;
  const len = x & 7;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (cls & C_L) return runEnd(s, i + len, e, C_L);
  if ((cls & (C_N | C_NL)) === 0 && i + len < e && (info(s, i + len) >> 3) & C_L) return runEnd(s, i + len, e, C_L);
  // \p{N}
  if (cls & C_N) return i + len;
  //  ?[^\s\p{L}\p{N}]+[\r\n]*   (cls is now "other" or White_Space)
  let j = -1;
  if ((cls & C_WS) === 0) j = i;
  else if (c === 0x20 && i + 1 < e && ((info(s, i + 1) >> 3) & (C_L | C_N | C_WS)) === 0) j = i + 1;
  if (j >= 0) {
    j = otherRunEnd(s, j, e);
    while (j < e && (s.charCodeAt(j) === 10 || s.charCodeAt(j) === 13)) j++;
    return j;
  }
  // White_Space run [i, end): \s*[\r\n]+ ends after its last CR/LF; else \s+(?!\S) backs off one code point
  // unless the run ends the segment; else \s+ (a single code point).
  let end = i;
  let lastNl = -1;
  let last = i;
  while (end < e) {
    const y = info(s, end);
    if (((y >> 3) & C_WS) === 0) break;
    if (y & (C_NL << 3)) lastNl = end;
    last = end;
    end += y & 7;
  }
  if (lastNl >= 0) return lastNl + 1;
  if (end === e || last === i) return end;
  return last;
}

// ---------------------------------------------------------------------------------------------------------------
// pat_str: a Rust regex (as tiktoken's fancy-regex reads it) turned into a JavaScript RegExp.

const WORD_CLASS = String.raw`\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}`;
/** Code points other than the ASCII pair that fold to the same letter (CaseFolding.txt, status C/S). */
const EXTRA_FOLDS: Record<string, string> = { s: '\u017f', k: '\u212a' };

/** An ASCII letter under (?i:…) as the class of its case-fold equivalents. */
function caselessLetter(c: string, inClass: boolean): string {
  if (inClass || !/^[A-Za-z]$/.test(c)) throw new Error(`${inClass ? 'a letter inside a character class' : `non-ASCII letter ${JSON.stringify(c)}`} under (?i:…) is not supported`);
  const l = c.toLowerCase();
  return `[${l}${l.toUpperCase()}${EXTRA_FOLDS[l] ?? ''}]`;
}

/**
 * Translates the subset of Rust regex syntax tokenizer patterns use: `\s \S \d \D \w \W` with their Unicode
 * meanings, `\p{…}`/`\pL`, `\x7F \x{…} \u… \U…`, `(?i:…)` over ASCII letters (expanded to classes), `(?:…)`, lookarounds, classes,
 * greedy and lazy quantifiers. Anything else (possessive quantifiers, inline flags, named groups) is refused.
 * Throws Error with the reason; the caller names the file.
 */
export function patternToRegExp(pat: string): RegExp {
  let out = '';
  let inClass = false;
  const groups: boolean[] = []; // true for a (?i: group
  let caseless = 0;
  for (let i = 0; i < pat.length; i++) {
    const c = pat[i];
    if (c === '\\') {
      const d = pat[++i];
      if (d === undefined) throw new Error('pattern ends with a backslash');
      switch (d) {
        case 's': out += inClass ? WS_CLASS : `[${WS_CLASS}]`; break;
        case 'w': out += inClass ? WORD_CLASS : `[${WORD_CLASS}]`; break;
        case 'S': case 'W':
          if (inClass) throw new Error(`\\${d} inside a character class is not supported`);
          out += `[^${d === 'S' ? WS_CLASS : WORD_CLASS}]`;
          break;
        case 'd': out += String.raw`\p{Nd}`; break;
        case 'D': out += String.raw`\P{Nd}`; break;
        case 'p': case 'P': {
          if (pat[i + 1] === '{') {
            const close = pat.indexOf('}', i);
            if (close < 0) throw new Error(`unclosed \\${d}{`);
            out += `\\${d}${pat.slice(i + 1, close + 1)}`;
            i = close;
          } else {
            out += `\\${d}{${pat[i + 1]}}`;
            i++;
          }
          break;
        }
        case 'r': case 'n': case 't': case 'f': case 'v': case 'b': case 'B': out += `\\${d}`; break;
        case 'x': case 'u': case 'U': { // \x7F \x{7F} \u007F \u{7F} \U0000007F \U{7F}
          const rest = pat.slice(i + 1);
          const m = /^\{([0-9A-Fa-f]{1,8})\}/.exec(rest) ?? new RegExp(`^[0-9A-Fa-f]{${d === 'x' ? 2 : d === 'u' ? 4 : 8}}`).exec(rest);
          if (!m) throw new Error(`malformed escape \\${d}`);
          const cp = parseInt(m[1] ?? m[0], 16);
          if (cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000)) throw new Error(`escape \\${d}${m[0]} is not a Unicode scalar value`);
          const ch = String.fromCodePoint(cp);
          if (caseless > 0 && /\p{L}/u.test(ch)) out += caselessLetter(ch, inClass);
          else out += `\\u{${cp.toString(16)}}`;
          i += m[0].length;
          break;
        }
        default:
          if (/[0-9A-Za-z]/.test(d)) throw new Error(`escape \\${d} is not supported`);
          out += /[\\^$.*+?()[\]{}|/-]/.test(d) ? `\\${d}` : d;
      }
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      else if (caseless > 0 && /[\p{L}]/u.test(c)) throw new Error('a letter inside a character class under (?i:…) is not supported');
      else if (c === '[') throw new Error('nested character classes are not supported');
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      if (pat[i + 1] === '^') out += pat[++i];
      if (pat[i + 1] === ']') throw new Error('a class starting with ] is not supported');
      continue;
    }
    if (c === '(') {
      const rest = pat.slice(i, i + 4);
      if (rest === '(?i:') {
        groups.push(true);
        caseless++;
        out += '(?:';
        i += 3;
      } else if (rest.startsWith('(?:') || rest.startsWith('(?=') || rest.startsWith('(?!') || rest === '(?<=' || rest === '(?<!') {
        groups.push(false);
      } else if (pat[i + 1] === '?') {
        throw new Error(`group ${JSON.stringify(pat.slice(i, i + 6))}… is not supported`);
      } else {
        groups.push(false);
        out += '(?:'; // capture groups do not change what matches
        continue;
      }
      if (rest !== '(?i:') out += c;
      continue;
    }
    if (c === ')') {
      if (groups.length === 0) throw new Error('unbalanced )');
      if (groups.pop()) caseless--;
      out += c;
      continue;
    }
    if ((c === '+' || c === '*' || c === '?' || c === '}') && pat[i + 1] === '+') throw new Error('possessive quantifiers are not supported');
    if (caseless > 0 && /\p{L}/u.test(c)) {
      out += caselessLetter(c, false);
      continue;
    }
    out += c;
  }
  if (inClass) throw new Error('unclosed character class');
  if (groups.length > 0) throw new Error('unclosed group');
  return new RegExp(out, 'gu');
}

// ---------------------------------------------------------------------------------------------------------------

interface TokEntry { token: number; bytes: number[] }

const NONE = 0x7fffffff;
/** Pieces up to this many bytes have their ids cached (words recur; long runs are rare and merged directly). */
const CACHE_MAX_BYTES = 64;
const CACHE_ENTRIES = 1 << 16;
/** Slots of the cache of merge results by (left id, right id): 2^PAIR_BITS. */
const PAIR_BITS = 18;
const utf8Replace = new TextDecoder('utf-8', { ignoreBOM: true });
const utf8Strict = new TextDecoder('utf-8', { ignoreBOM: true, fatal: true });

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}

export class TiktokenTokenizer {
  readonly source: string;
  readonly vocabSize: number;
  /** Grok-2 has no BOS token: -1 */
  readonly bosId = -1;
  /** `<|eos|>` if the file has it, else -1 */
  readonly eosId: number;
  /** `<|pad|>` if the file has it, else -1 */
  readonly padId: number;
  readonly unkId = -1;
  /** the word pattern in force (V1's unless the file's pat_str overrides it) */
  readonly pattern: string;
  readonly heapFrom: number;

  /** regular tokens by the hash of their bytes (open addressing: slot → id, -1 empty), compared byte by byte */
  private readonly slotId: Int32Array;
  private readonly slotHash: Int32Array;
  /** rank of every two-byte token, by (b0 << 8 | b1), else NONE */
  private readonly pairRank = new Int32Array(65536).fill(NONE);
  private readonly byteId = new Int32Array(256);
  private readonly maxTokenBytes: number;
  /** every id's bytes (specials: their UTF-8 text) in one pool */
  private readonly pool: Uint8Array;
  private readonly offset: Int32Array;
  private readonly special: Uint8Array;
  /** special text (binary string) → id, the allowed ones only */
  private readonly allowed = new Map<string, number>();
  /** first byte of allowed specials → their distinct lengths, longest first */
  private readonly allowedLengths = new Map<number, number[]>();
  private readonly specialIds = new Map<string, number>();
  /** null: the V1 scanner */
  private readonly regex: RegExp | null;

  /** ids of recently merged pieces, by their bytes; cleared when full (it only saves work) */
  private readonly pieceCache = new Map<string, Int32Array>();
  /** rank of the token that two adjacent tokens make together (or NONE), by their ids: open addressing, -1 empty */
  private readonly pairLeft = new Int32Array(1 << PAIR_BITS).fill(-1);
  private readonly pairRight = new Int32Array(1 << PAIR_BITS);
  private readonly pairMerged = new Int32Array(1 << PAIR_BITS);
  private pairUsed = 0;
  // scratch for the quadratic merge
  private pos = new Int32Array(64);
  private rk = new Int32Array(64);
  private ids = new Int32Array(64);

  private constructor(regular: TokEntry[], special: TokEntry[], vocabSize: number, pattern: string, opts: TiktokenOptions, source: string) {
    this.source = source;
    this.vocabSize = vocabSize;
    this.pattern = pattern;
    this.heapFrom = opts.heapFrom ?? 128;
    try {
      this.regex = pattern === V1_PATTERN ? null : patternToRegExp(pattern);
    } catch (e) {
      throw new FormatError(source, `pat_str cannot be used: ${(e as Error).message}`);
    }
    const owner = new Int32Array(vocabSize).fill(-1);
    const names = ['regular_tokens', 'special_tokens'];
    let total = 0;
    for (const [list, which] of [[regular, 0], [special, 1]] as const) {
      for (let i = 0; i < list.length; i++) {
        const t = list[i];
        const where = `${names[which]}[${i}]`;
        if (t === null || typeof t !== 'object' || Array.isArray(t)) throw new FormatError(source, `${where} is ${describe(t)}, expected {"token": id, "bytes": [...]}`);
        const id = t.token;
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new FormatError(source, `${where}.token is ${describe(id)}, expected an id in 0..${vocabSize - 1} (vocab_size ${vocabSize})`);
        const prev = owner[id];
        if (prev >= 0) throw new FormatError(source, `token id ${id} is used twice: ${names[prev >> 30]}[${prev & 0x3fffffff}] and ${where}`);
        owner[id] = (which << 30) | i;
        const b = t.bytes;
        if (!Array.isArray(b) || b.length === 0) throw new FormatError(source, `${where}.bytes is ${describe(b)}, expected a non-empty array of bytes`);
        for (let k = 0; k < b.length; k++) {
          const v = b[k];
          if (!Number.isInteger(v) || v < 0 || v > 255) throw new FormatError(source, `${where}.bytes[${k}] is ${describe(v)}, not a byte (0..255)`);
        }
        total += b.length;
      }
    }
    // fewer ids than entries: some id was out of range or used twice, reported above
    this.pool = new Uint8Array(total);
    this.offset = new Int32Array(vocabSize + 1);
    this.special = new Uint8Array(vocabSize);
    // offsets in id order so a token's bytes are pool[offset[id], offset[id + 1])
    const entryOf = (id: number): TokEntry => (owner[id] >> 30 ? special : regular)[owner[id] & 0x3fffffff];
    let at = 0;
    for (let id = 0; id < vocabSize; id++) {
      const b = entryOf(id).bytes;
      this.offset[id] = at;
      this.pool.set(b, at);
      at += b.length;
      if (owner[id] >> 30) this.special[id] = 1;
    }
    this.offset[vocabSize] = at;
    // the pool as a binary string, to look tokens up as encode() looks up pieces
    const all = Buffer.from(this.pool.buffer, this.pool.byteOffset, this.pool.length).toString('latin1');
    const slots = 2 ** Math.ceil(Math.log2(Math.max(16, regular.length * 2)));
    this.slotId = new Int32Array(slots).fill(-1);
    this.slotHash = new Int32Array(slots);
    let maxLen = 1;
    this.byteId.fill(-1);
    for (let i = 0; i < regular.length; i++) {
      const { token: id, bytes } = regular[i];
      const o = this.offset[id];
      const dup = this.findToken(all, o, o + bytes.length);
      if (dup !== NONE) {
        const j = regular.findIndex((t) => t.token === dup);
        throw new FormatError(source, `regular_tokens[${i}] (id ${id}) has the same bytes as regular_tokens[${j}] (id ${dup})`);
      }
      const h = hashBytes(all, o, o + bytes.length);
      let slot = mix(h) & (slots - 1);
      while (this.slotId[slot] !== -1) slot = (slot + 1) & (slots - 1);
      this.slotId[slot] = id;
      this.slotHash[slot] = h;
      if (bytes.length === 1) this.byteId[bytes[0]] = id;
      else if (bytes.length === 2) this.pairRank[(bytes[0] << 8) | bytes[1]] = id;
      if (bytes.length > maxLen) maxLen = bytes.length;
    }
    this.maxTokenBytes = maxLen;
    const missingByte = this.byteId.indexOf(-1);
    if (missingByte >= 0) throw new FormatError(source, `regular_tokens has no token for the single byte ${missingByte} (0x${missingByte.toString(16).padStart(2, '0')}); byte-level BPE needs all 256`);
    for (let i = 0; i < special.length; i++) {
      const { token: id, bytes } = special[i];
      let text: string;
      try {
        text = utf8Strict.decode(Uint8Array.from(bytes));
      } catch {
        throw new FormatError(source, `special_tokens[${i}] (id ${id}) is not valid UTF-8`);
      }
      const dup = this.specialIds.get(text);
      if (dup !== undefined) throw new FormatError(source, `special_tokens[${i}] ${JSON.stringify(text)} (id ${id}) repeats id ${dup}`);
      this.specialIds.set(text, id);
      const mode = opts.allowedSpecial ?? 'sglang';
      if (mode === 'all' || (mode === 'sglang' && sglangAllowsSpecial(text))) {
        this.allowed.set(all.substring(this.offset[id], this.offset[id + 1]), id);
        let lens = this.allowedLengths.get(bytes[0]);
        if (!lens) this.allowedLengths.set(bytes[0], (lens = []));
        if (!lens.includes(bytes.length)) lens.push(bytes.length);
      }
    }
    for (const lens of this.allowedLengths.values()) lens.sort((a, b) => b - a);
    this.eosId = this.specialIds.get('<|eos|>') ?? -1;
    this.padId = this.specialIds.get('<|pad|>') ?? -1;
  }

  /** Loads a `tokenizer.tok.json`. */
  static fromFile(path: string, opts: TiktokenOptions = {}): TiktokenTokenizer {
    let bytes: Uint8Array;
    try {
      bytes = readSmallFile(path, 512 << 20);
    } catch (e) {
      throw e instanceof FormatError ? new FormatError(path, `cannot read tokenizer file: ${e.detail.replace(/^cannot open: /, '')}`) : e;
    }
    return TiktokenTokenizer.fromBytes(bytes, path, opts);
  }

  /** Builds a tokenizer from the bytes of a `tokenizer.tok.json`; `source` names them in errors. */
  static fromBytes(bytes: Uint8Array, source: string, opts: TiktokenOptions = {}): TiktokenTokenizer {
    let json: unknown;
    try {
      json = JSON.parse(utf8Replace.decode(bytes));
    } catch (e) {
      const at = /position (\d+)/.exec((e as Error).message)?.[1];
      throw new FormatError(source, `not valid JSON${at === undefined ? '' : ` (at character ${at})`}`);
    }
    return TiktokenTokenizer.fromJson(json, source, opts);
  }

  /** Builds a tokenizer from a parsed tok.json object, checking every field. */
  static fromJson(json: unknown, source: string, opts: TiktokenOptions = {}): TiktokenTokenizer {
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new FormatError(source, `expected a JSON object with regular_tokens, special_tokens and word_split, got ${describe(json)}`);
    const o = json as Record<string, unknown>;
    const regular = o.regular_tokens;
    const special = o.special_tokens ?? [];
    if (!Array.isArray(regular)) throw new FormatError(source, `regular_tokens is ${regular === undefined ? 'missing' : describe(regular)}, expected an array`);
    if (!Array.isArray(special)) throw new FormatError(source, `special_tokens is ${describe(special)}, expected an array`);
    // sglang tiktoken_tokenizer.py: word_split must be "V1"; pat_str, when present, replaces its pattern.
    if (o.word_split !== 'V1') throw new FormatError(source, `word_split is ${o.word_split === undefined ? 'missing' : describe(o.word_split)}; only "V1" is known`);
    if (o.pat_str !== undefined && typeof o.pat_str !== 'string') throw new FormatError(source, `pat_str is ${describe(o.pat_str)}, expected a string`);
    const n = o.vocab_size ?? regular.length + special.length;
    if (!Number.isInteger(n) || (n as number) < 256) throw new FormatError(source, `vocab_size is ${describe(n)}, expected an integer ≥ 256`);
    // Checked before any table of vocab_size entries is made: a huge vocab_size must not allocate.
    const count = regular.length + special.length;
    if ((n as number) > count) {
      const seen = new Uint8Array(Math.min(n as number, count + 1));
      for (const t of [...regular, ...special] as unknown[]) {
        const id = t !== null && typeof t === 'object' ? (t as { token?: unknown }).token : undefined;
        if (typeof id === 'number' && Number.isInteger(id) && id >= 0 && id < seen.length) seen[id] = 1;
      }
      throw new FormatError(source, `vocab_size is ${n} but the file has ${count} tokens (id ${seen.indexOf(0)} is missing)`);
    }
    return new TiktokenTokenizer(regular as TokEntry[], special as TokEntry[], n as number, (o.pat_str as string | undefined) ?? V1_PATTERN, opts, source);
  }

  /** The id of a special token's text (allowed in text or not), or undefined. */
  specialId(text: string): number | undefined {
    return this.specialIds.get(text);
  }

  /** Whether an id is a special token. */
  isSpecial(id: number): boolean {
    this.checkId(id, 0);
    return this.special[id] === 1;
  }

  /** The bytes of a token (a special's UTF-8 text). */
  idToBytes(id: number): Uint8Array {
    this.checkId(id, 0);
    return this.pool.slice(this.offset[id], this.offset[id + 1]);
  }

  /** A token's bytes as text (bytes that are not complete UTF-8 read as U+FFFD). */
  idToPiece(id: number): string {
    this.checkId(id, 0);
    return utf8Replace.decode(this.pool.subarray(this.offset[id], this.offset[id + 1]));
  }

  // -------------------------------------------------------------------------------------------------------------
  // Encoding

  /**
   * Text → ids, as SGLang's tiktoken encode: allowed specials in the text become their ids; no BOS/EOS unless
   * asked (`eos` appends `<|eos|>`; there is no BOS). Lone surrogates and malformed UTF-8 bytes read as U+FFFD.
   * `specials: false` reads special-token text as plain text (tiktoken encode_ordinary).
   */
  encode(text: string | Uint8Array, opts?: { bos?: boolean; eos?: boolean; specials?: boolean }): number[] {
    if (opts?.bos) throw new Error(`${this.source}: this tokenizer has no BOS token`);
    const bin = toBinary(text);
    const out: number[] = [];
    if (opts?.specials === false || this.allowed.size === 0) this.encodeOrdinary(bin, 0, bin.length, out);
    else {
      const next = new Map<number, number>(); // first byte → its next occurrence at or after `from`
      let from = 0;
      for (;;) {
        const at = this.nextSpecial(bin, from, next);
        this.encodeOrdinary(bin, from, at, out);
        if (at === bin.length) break;
        out.push(this.foundId);
        from = at + this.foundLength;
      }
    }
    if (opts?.eos) {
      if (this.eosId < 0) throw new Error(`${this.source}: this tokenizer has no <|eos|> token`);
      out.push(this.eosId);
    }
    return out;
  }

  /** Text → the pieces of its tokens (idToPiece of each id). */
  encodeAsPieces(text: string | Uint8Array): string[] {
    return this.encode(text).map((id) => this.idToPiece(id));
  }

  /** nextSpecial's result besides its position */
  private foundId = -1;
  private foundLength = 0;

  /**
   * The position of the leftmost allowed special at or after `from` (its id and length in foundId, foundLength),
   * or bin.length if none. Specials starting at the same place: the longest (tiktoken's choice there depends on
   * hash order).
   */
  private nextSpecial(bin: string, from: number, next: Map<number, number>): number {
    for (;;) {
      let at = bin.length;
      let first = -1;
      for (const f of this.allowedLengths.keys()) {
        let p = next.get(f);
        if (p === undefined || (p >= 0 && p < from)) {
          p = bin.indexOf(String.fromCharCode(f), from);
          next.set(f, p);
        }
        if (p >= 0 && p < at) {
          at = p;
          first = f;
        }
      }
      if (first < 0) return bin.length;
      for (const len of this.allowedLengths.get(first)!) {
        if (at + len > bin.length) continue;
        const id = this.allowed.get(bin.substring(at, at + len));
        if (id !== undefined) {
          this.foundId = id;
          this.foundLength = len;
          return at;
        }
      }
      from = at + 1;
    }
  }

  /** Splits bin[a, b) into pieces by the word pattern and encodes each. */
  private encodeOrdinary(bin: string, a: number, b: number, out: number[]): void {
    if (this.regex === null) {
      for (let i = a; i < b; ) {
        const j = pieceEndV1(bin, i, b);
        this.encodePiece(bin, i, j, out);
        i = j;
      }
      return;
    }
    if (a === b) return;
    const seg = Buffer.from(bin.substring(a, b), 'latin1').toString('utf8');
    this.regex.lastIndex = 0;
    for (const m of seg.matchAll(this.regex)) {
      if (m[0].length === 0) continue;
      const p = Buffer.from(m[0], 'utf8').toString('latin1');
      this.encodePiece(p, 0, p.length, out);
    }
  }

  /** One piece bin[a, b): its id if it is a token, else byte-pair merged (tiktoken byte_pair_encode). */
  private encodePiece(bin: string, a: number, b: number, out: number[]): void {
    const n = b - a;
    if (n === 1) {
      out.push(this.byteId[bin.charCodeAt(a)]);
      return;
    }
    if (n <= this.maxTokenBytes) {
      const id = this.findToken(bin, a, b);
      if (id !== NONE) {
        out.push(id);
        return;
      }
    }
    const key = n <= CACHE_MAX_BYTES ? bin.substring(a, b) : '';
    if (n <= CACHE_MAX_BYTES) {
      const hit = this.pieceCache.get(key);
      if (hit !== undefined) {
        for (let k = 0; k < hit.length; k++) out.push(hit[k]);
        return;
      }
    }
    const start = out.length;
    if (n < this.heapFrom) this.mergeQuadratic(bin, a, b, out);
    else this.mergeHeap(bin, a, b, out);
    if (n <= CACHE_MAX_BYTES) {
      if (this.pieceCache.size >= CACHE_ENTRIES) this.pieceCache.clear();
      // a copy of the key: a substring may share (and keep alive) the whole text
      const ids = new Int32Array(out.length - start);
      for (let k = 0; k < ids.length; k++) ids[k] = out[start + k];
      this.pieceCache.set(n < 13 ? key : Buffer.from(key, 'latin1').toString('latin1'), ids);
    }
  }

  /** Rank of the token that tokens `left` = bin[x, m) and `right` = bin[m, y) make together, or NONE (cached by ids). */
  private mergedRank(bin: string, x: number, y: number, left: number, right: number): number {
    const mask = (1 << PAIR_BITS) - 1;
    let h = (Math.imul(left, 0x9e3779b1) ^ Math.imul(right + 0x7f4a7c15, 0x85ebca6b)) >>> (32 - PAIR_BITS);
    for (;;) {
      const l = this.pairLeft[h];
      if (l === -1) break;
      if (l === left && this.pairRight[h] === right) return this.pairMerged[h];
      h = (h + 1) & mask;
    }
    const r = this.rankOf(bin, x, y);
    if (this.pairUsed >= mask >> 1) {
      this.pairLeft.fill(-1);
      this.pairUsed = 0;
      h = (Math.imul(left, 0x9e3779b1) ^ Math.imul(right + 0x7f4a7c15, 0x85ebca6b)) >>> (32 - PAIR_BITS);
    }
    this.pairLeft[h] = left;
    this.pairRight[h] = right;
    this.pairMerged[h] = r;
    this.pairUsed++;
    return r;
  }

  /** Rank of the token bin[x, y), or NONE. */
  private rankOf(bin: string, x: number, y: number): number {
    if (y - x === 2) return this.pairRank[(bin.charCodeAt(x) << 8) | bin.charCodeAt(x + 1)];
    if (y - x > this.maxTokenBytes) return NONE;
    return this.findToken(bin, x, y);
  }

  /** The id of the regular token whose bytes are bin[a, b), or NONE. */
  private findToken(bin: string, a: number, b: number): number {
    const h = hashBytes(bin, a, b);
    const mask = this.slotId.length - 1;
    const n = b - a;
    for (let i = mix(h) & mask; ; i = (i + 1) & mask) {
      const id = this.slotId[i];
      if (id < 0) return NONE;
      if (this.slotHash[i] !== h) continue;
      const o = this.offset[id];
      if (this.offset[id + 1] - o !== n) continue;
      let k = 0;
      while (k < n && this.pool[o + k] === bin.charCodeAt(a + k)) k++;
      if (k === n) return id;
    }
  }

  /**
   * tiktoken _byte_pair_merge: parts start as single bytes; rk[k] is the rank of parts k and k+1 together; merge
   * the lowest (leftmost on ties) until no pair is a token. O(n²), fastest for the short pieces text is made of.
   */
  private mergeQuadratic(bin: string, a: number, b: number, out: number[]): void {
    const n = b - a;
    if (this.pos.length <= n) {
      const size = 2 ** Math.ceil(Math.log2(n + 1));
      this.pos = new Int32Array(size);
      this.rk = new Int32Array(size);
      this.ids = new Int32Array(size);
    }
    const { pos, rk, ids } = this;
    for (let k = 0; k < n; k++) {
      pos[k] = a + k;
      ids[k] = this.byteId[bin.charCodeAt(a + k)];
    }
    pos[n] = b;
    for (let k = 0; k < n - 1; k++) rk[k] = this.pairRank[(bin.charCodeAt(a + k) << 8) | bin.charCodeAt(a + k + 1)];
    rk[n - 1] = NONE;
    let m = n;
    for (;;) {
      let best = NONE;
      let at = -1;
      for (let k = 0; k < m - 1; k++) {
        if (rk[k] < best) {
          best = rk[k];
          at = k;
        }
      }
      if (at < 0) break;
      ids[at] = best;
      pos.copyWithin(at + 1, at + 2, m + 1);
      ids.copyWithin(at + 1, at + 2, m);
      rk.copyWithin(at + 1, at + 2, m);
      m--;
      rk[at] = at + 1 < m ? this.mergedRank(bin, pos[at], pos[at + 2], best, ids[at + 1]) : NONE;
      if (at > 0) rk[at - 1] = this.mergedRank(bin, pos[at - 1], pos[at + 1], ids[at - 1], best);
    }
    for (let k = 0; k < m; k++) out.push(ids[k]);
  }

  /**
   * The same merges in O(n log n) for long pieces (runs of spaces, letters or symbols): parts form a linked list
   * (by start offset), candidate pairs sit in a min-heap ordered by (rank, start), which is tiktoken's order
   * (lowest rank, leftmost on ties). A popped pair is stale if either part has changed since it was pushed: the
   * pair is identified by its left part's start and its right part's end, which fix its bytes and so its rank.
   */
  private mergeHeap(bin: string, a: number, b: number, out: number[]): void {
    const n = b - a;
    const nxt = new Int32Array(n); // start of the next part (n at the end)
    const prv = new Int32Array(n); // start of the previous part (-1 at the start)
    const id = new Int32Array(n); // id of the part starting here, -1 once merged into its left neighbour
    for (let k = 0; k < n; k++) {
      nxt[k] = k + 1;
      prv[k] = k - 1;
      id[k] = this.byteId[bin.charCodeAt(a + k)];
    }
    const heap = new PairHeap(2 * n);
    for (let k = 0; k + 1 < n; k++) {
      const r = this.pairRank[(bin.charCodeAt(a + k) << 8) | bin.charCodeAt(a + k + 1)];
      if (r !== NONE) heap.push(r, k, k + 2);
    }
    while (heap.size > 0) {
      const r = heap.topRank();
      const s = heap.topStart();
      const end = heap.topEnd();
      heap.pop();
      if (id[s] < 0) continue;
      const mid = nxt[s];
      if (mid >= n || (nxt[mid] !== end)) continue;
      id[s] = r;
      id[mid] = -1;
      nxt[s] = end;
      if (end < n) prv[end] = s;
      const p = prv[s];
      if (p >= 0) {
        const rr = this.mergedRank(bin, a + p, a + end, id[p], r);
        if (rr !== NONE) heap.push(rr, p, end);
      }
      if (end < n) {
        const q = nxt[end];
        const rr = this.mergedRank(bin, a + s, a + q, r, id[end]);
        if (rr !== NONE) heap.push(rr, s, q);
      }
    }
    for (let k = 0; k < n; k = nxt[k]) out.push(id[k]);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Decoding

  private checkId(id: number, index: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize)
      throw new RangeError(`${this.source}: token id ${id} at position ${index} is out of range (vocabulary size ${this.vocabSize})`);
  }

  /** Ids → text: the tokens' bytes joined, then UTF-8 with U+FFFD for each maximal invalid subsequence. */
  decode(ids: ArrayLike<number>): string {
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      this.checkId(ids[i], i);
      total += this.offset[ids[i] + 1] - this.offset[ids[i]];
    }
    const buf = new Uint8Array(total);
    let at = 0;
    const pool = this.pool;
    for (let i = 0; i < ids.length; i++) {
      const e = this.offset[ids[i] + 1];
      for (let k = this.offset[ids[i]]; k < e; k++) buf[at++] = pool[k];
    }
    return utf8Replace.decode(buf);
  }

  /**
   * A decoder for ids arriving one at a time: text is emitted once its bytes are complete; the outputs (pushes
   * then flush) joined equal decode(all ids). (A streaming WHATWG decoder: the same state machine as one call.)
   */
  createStreamDecoder(): StreamDecoder {
    const d = new TextDecoder('utf-8', { ignoreBOM: true });
    let count = 0;
    return {
      push: (id: number): string => {
        this.checkId(id, count++);
        return d.decode(this.pool.subarray(this.offset[id], this.offset[id + 1]), { stream: true });
      },
      flush: (): string => d.decode(),
    };
  }
}

/** FNV-1a over the bytes of a binary string. */
function hashBytes(s: string, a: number, b: number): number {
  let h = 0x811c9dc5 | 0;
  for (let k = a; k < b; k++) h = Math.imul(h ^ s.charCodeAt(k), 0x01000193);
  return h;
}

/** Spreads a hash over table slots (murmur3 finaliser). */
function mix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A min-heap of merge candidates (rank, left start, right end), ordered by rank then start. */
class PairHeap {
  private rank: Int32Array;
  private start: Int32Array;
  private end: Int32Array;
  size = 0;

  constructor(capacity: number) {
    this.rank = new Int32Array(Math.max(capacity, 16));
    this.start = new Int32Array(this.rank.length);
    this.end = new Int32Array(this.rank.length);
  }

  topRank(): number { return this.rank[0]; }
  topStart(): number { return this.start[0]; }
  topEnd(): number { return this.end[0]; }

  private less(i: number, j: number): boolean {
    return this.rank[i] < this.rank[j] || (this.rank[i] === this.rank[j] && this.start[i] < this.start[j]);
  }

  private swap(i: number, j: number): void {
    const r = this.rank[i], s = this.start[i], e = this.end[i];
    this.rank[i] = this.rank[j]; this.start[i] = this.start[j]; this.end[i] = this.end[j];
    this.rank[j] = r; this.start[j] = s; this.end[j] = e;
  }

  push(rank: number, start: number, end: number): void {
    if (this.size === this.rank.length) {
      const grow = (a: Int32Array): Int32Array => { const b = new Int32Array(a.length * 2); b.set(a); return b; };
      this.rank = grow(this.rank);
      this.start = grow(this.start);
      this.end = grow(this.end);
    }
    let i = this.size++;
    this.rank[i] = rank;
    this.start[i] = start;
    this.end[i] = end;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  pop(): void {
    const last = --this.size;
    if (last === 0) return;
    this.rank[0] = this.rank[last];
    this.start[0] = this.start[last];
    this.end[0] = this.end[last];
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= last) break;
      const c = l + 1 < last && this.less(l + 1, l) ? l + 1 : l;
      if (!this.less(c, i)) break;
      this.swap(c, i);
      i = c;
    }
  }
}

/** Text → its UTF-8 bytes as a binary string. Lone surrogates become U+FFFD (as tiktoken's callers do); bytes are read with replacement. */
function toBinary(text: string | Uint8Array): string {
  if (typeof text === 'string') return Buffer.from(text, 'utf8').toString('latin1');
  if (!(text instanceof Uint8Array)) throw new TypeError('encode: text must be a string or a Uint8Array');
  return Buffer.from(utf8Replace.decode(text), 'utf8').toString('latin1');
}

/** Whether a tokenizer file's bytes are JSON (a tok.json) rather than a SentencePiece protobuf: its first non-blank byte is `{`. */
export function looksLikeTokJson(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length && i < 64; i++) {
    const b = bytes[i];
    if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d) continue;
    return b === 0x7b;
  }
  return false;
}
