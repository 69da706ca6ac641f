/**
 * BPE tokenizer trainer that writes a SentencePiece `ModelProto` (sentencepiece_model.proto) laid out like Grok-1's:
 *   0 [PAD], 1 [BOS], 2 [EOS] CONTROL; 3 [UNK] UNKNOWN; 4 … 259 BYTE <0x00> … <0xFF>;
 *   then NORMAL merged pieces in merge order with score −rank, then the single characters (lower scores).
 * SentencePiece's BPE encoder merges the highest-scoring adjacent pair first (SentencePiece bpe_model.cc), so scores = −rank
 * replay the merges in the order they were learned.
 *
 * Pre-tokenisation mirrors what the encoder sees: the text is normalised as SentencePiece does for these
 * settings ("▁" + text with spaces → ▁), then cut into words that start at each ▁; newlines and digits
 * are words of their own and never merged (split_digits), so no piece contains a newline or a digit and
 * no piece has ▁ anywhere but at its start.
 */
import { type ModelProto, type SentencePiece, PieceType, ModelType } from '../tokenizer/protobuf.js';

export interface BpeOptions {
  /** Total vocabulary size including specials, bytes and single characters. */
  vocabSize: number;
  /** Longest piece, in Unicode characters (SentencePiece max_sentencepiece_length, default 16). */
  maxPieceLength?: number;
  /** Characters seen fewer times than this are left to byte fallback (default 1: keep all). */
  minCharCount?: number;
}

export const SPECIAL_PIECES: readonly SentencePiece[] = [
  { piece: '[PAD]', score: 0, type: PieceType.CONTROL },
  { piece: '[BOS]', score: 0, type: PieceType.CONTROL },
  { piece: '[EOS]', score: 0, type: PieceType.CONTROL },
  { piece: '[UNK]', score: 0, type: PieceType.UNKNOWN },
];

const WS = '\u2581';

/** SentencePiece normalisation for identity map, dummy prefix on, extra-whitespace removal off. */
export function normalize(text: string): string {
  return text.length === 0 ? '' : WS + text.replaceAll(' ', WS);
}

/**
 * Words as the trainer counts them: a run starting at ▁ (or at the text start) that changes where letters
 * meet other characters (like SentencePiece's split_by_unicode_script: "▁earth" "." rather than "▁earth.");
 * newlines and digits are words of their own.
 */
export function preTokenize(normalized: string): string[] {
  const out: string[] = [];
  let cur = '';
  let curClass = -1; // class of cur's last non-▁ character, −1 while cur is empty or only ▁
  for (const ch of normalized) {
    if (ch === '\n' || (ch >= '0' && ch <= '9')) {
      if (cur) out.push(cur);
      out.push(ch);
      cur = '';
      curClass = -1;
    } else if (ch === WS) {
      if (cur) out.push(cur);
      cur = ch;
      curClass = -1;
    } else {
      const cls = LETTER.test(ch) ? 1 : 0;
      if (curClass >= 0 && cls !== curClass) {
        out.push(cur);
        cur = '';
      }
      cur += ch;
      curClass = cls;
    }
  }
  if (cur) out.push(cur);
  return out;
}

const LETTER = /^[\p{L}\p{M}]$/u;

export interface BpeResult {
  model: ModelProto;
  /** Merged pieces in the order learned. */
  merges: string[];
  /** Single characters kept as NORMAL pieces. */
  chars: string[];
}

/** Learns merges from `text` until the vocabulary reaches opts.vocabSize. Deterministic. */
export function trainBpe(text: string, opts: BpeOptions): BpeResult {
  const maxLen = opts.maxPieceLength ?? 16;
  const minChar = opts.minCharCount ?? 1;
  const words = new Map<string, number>();
  for (const w of preTokenize(normalize(text))) words.set(w, (words.get(w) ?? 0) + 1);

  // Characters, most frequent first (ties by code point) — all of them must be pieces or bytes.
  const charCount = new Map<string, number>();
  for (const [w, n] of words) for (const ch of w) charCount.set(ch, (charCount.get(ch) ?? 0) + n);
  const chars = [...charCount].filter(([, n]) => n >= minChar).sort((a, b) => b[1] - a[1] || cmp(a[0], b[0])).map(([c]) => c);
  const base = SPECIAL_PIECES.length + 256;
  const nMerges = opts.vocabSize - base - chars.length;
  if (nMerges < 0) {
    throw new Error(`trainBpe: vocabSize ${opts.vocabSize} is smaller than specials + bytes + ${chars.length} characters (${base + chars.length})`);
  }

  // Symbols: interned strings. A word is an array of symbol ids with a count.
  const symStr: string[] = [];
  const symLen: number[] = [];
  const symId = new Map<string, number>();
  const intern = (s: string): number => {
    let id = symId.get(s);
    if (id === undefined) { id = symStr.length; symStr.push(s); symLen.push([...s].length); symId.set(s, id); }
    return id;
  };
  const frozen = (s: string) => s === '\n' || (s >= '0' && s <= '9');
  const wordSyms: number[][] = [];
  const wordCount: number[] = [];
  for (const [w, n] of words) {
    wordSyms.push([...w].map(intern));
    wordCount.push(n);
  }

  // Pair counts and, per pair, the words containing it (rebuilt lazily: stale entries are re-checked).
  const key = (a: number, b: number) => a * 0x100000 + b;
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const addPairs = (wi: number, sign: 1 | -1) => {
    const s = wordSyms[wi];
    for (let i = 0; i + 1 < s.length; i++) {
      if (frozen(symStr[s[i]]) || frozen(symStr[s[i + 1]])) continue;
      const k = key(s[i], s[i + 1]);
      pairCount.set(k, (pairCount.get(k) ?? 0) + sign * wordCount[wi]);
      if (sign > 0) {
        let set = pairWords.get(k);
        if (!set) { set = new Set(); pairWords.set(k, set); }
        set.add(wi);
      }
    }
  };
  for (let wi = 0; wi < wordSyms.length; wi++) addPairs(wi, 1);

  const merges: string[] = [];
  const pieceSet = new Set<string>(chars);
  while (merges.length < nMerges) {
    let bestK = -1, bestN = 0, bestS = '';
    for (const [k, n] of pairCount) {
      if (n <= 0) continue;
      if (n < bestN) continue;
      const a = Math.floor(k / 0x100000), b = k % 0x100000;
      if (symLen[a] + symLen[b] > maxLen) continue;
      const s = symStr[a] + symStr[b];
      if (n > bestN || cmp(s, bestS) < 0) { bestK = k; bestN = n; bestS = s; }
    }
    if (bestK < 0) break; // nothing left to merge: a smaller vocabulary than asked
    const a = Math.floor(bestK / 0x100000), b = bestK % 0x100000;
    const merged = intern(bestS);
    if (!pieceSet.has(bestS)) { merges.push(bestS); pieceSet.add(bestS); }
    for (const wi of pairWords.get(bestK) ?? []) {
      const s = wordSyms[wi];
      let has = false;
      for (let i = 0; i + 1 < s.length; i++) if (s[i] === a && s[i + 1] === b) { has = true; break; }
      if (!has) continue;
      addPairs(wi, -1);
      const out: number[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) { out.push(merged); i++; } else out.push(s[i]);
      }
      wordSyms[wi] = out;
      addPairs(wi, 1);
    }
    pairCount.delete(bestK);
    pairWords.delete(bestK);
  }

  const pieces: SentencePiece[] = [...SPECIAL_PIECES];
  for (let b = 0; b < 256; b++) pieces.push({ piece: `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, score: 0, type: PieceType.BYTE });
  let rank = 0;
  for (const m of merges) pieces.push({ piece: m, score: -rank++, type: PieceType.NORMAL });
  for (const ch of chars) pieces.push({ piece: ch, score: -rank++, type: PieceType.NORMAL });

  const model: ModelProto = {
    pieces,
    trainerSpec: {
      modelType: ModelType.BPE,
      vocabSize: pieces.length,
      characterCoverage: 1,
      maxSentencepieceLength: maxLen,
      splitByUnicodeScript: true,
      splitByWhitespace: true,
      splitByNumber: true,
      splitDigits: true,
      treatWhitespaceAsSuffix: false,
      byteFallback: true,
      unkId: 3,
      bosId: 1,
      eosId: 2,
      padId: 0,
      unkPiece: '[UNK]',
      bosPiece: '[BOS]',
      eosPiece: '[EOS]',
      padPiece: '[PAD]',
      unkSurface: '[UNK]',
    },
    normalizerSpec: {
      name: 'identity',
      precompiledCharsmap: new Uint8Array(0),
      addDummyPrefix: true,
      removeExtraWhitespaces: false,
      escapeWhitespaces: true,
    },
  };
  return { model, merges, chars };
}

/** Code-unit order, locale-independent. */
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
