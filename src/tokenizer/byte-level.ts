/**
 * A byte-level BPE vocabulary as GGUF stores it (tokenizer.ggml.model "gpt2"): every token's bytes spelled
 * with GPT-2's byte → character table (each byte one printable code point, so any byte string is a valid
 * string), plus `tokenizer.ggml.merges`. This is how llama.cpp's converter stores Grok-2's tiktoken
 * vocabulary (convert_hf_to_gguf.py `_set_vocab_gpt2`, pre-tokenizer "grok-2", from the community
 * tokenizer.json that is tokenizer.tok.json converted by transformers' TikTokenConverter).
 *
 * Both directions here: a tiktoken tokenizer → this form (the GGUF writer), and this form → the tok.json
 * entries a TiktokenTokenizer is built from (the GGUF reader). A tiktoken token's id is its merge rank, so
 * the ids alone carry the BPE; the merges are written for llama.cpp, which merges by them.
 */
import { FormatError } from '../base/errors.js';
import { TiktokenTokenizer } from './tiktoken.js';

/** GGUF token types (llama.cpp llama_token_type, SentencePiece's numbers). */
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

/**
 * GPT-2's bytes_to_unicode: the printable Latin-1 bytes (! … ~, ¡ … ¬, ® … ÿ) stand for themselves, the other
 * 68 bytes take U+0100, U+0101, … in byte order.
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const out: string[] = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[b] = String.fromCharCode(printable ? b : next++);
  }
  return out;
})();

const CHAR_TO_BYTE: ReadonlyMap<number, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c.charCodeAt(0), b]));

/** Bytes spelled in GPT-2's byte characters. */
export function bytesToByteLevel(bytes: ArrayLike<number>): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]!];
  return s;
}

/** The bytes a byte-level token spells, or null if it holds a character outside GPT-2's table. */
export function byteLevelToBytes(token: string): number[] | null {
  const out: number[] = new Array<number>(token.length);
  for (let i = 0; i < token.length; i++) {
    const b = CHAR_TO_BYTE.get(token.charCodeAt(i));
    if (b === undefined) return null;
    out[i] = b;
  }
  return out;
}

/** A byte-level BPE vocabulary as the GGUF keys hold it (tokenizer.ggml.*). */
export interface ByteLevelVocabulary {
  /** tokenizer.ggml.model */
  readonly model: 'gpt2';
  /** tokenizer.ggml.pre: the pre-tokenizer (word-splitting pattern) llama.cpp selects by name */
  readonly pre: string;
  readonly tokens: readonly string[];
  readonly types: ArrayLike<number>;
  /** "left right" in byte-level spelling, highest priority first */
  readonly merges: readonly string[];
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;
}

/**
 * A tiktoken vocabulary in GGUF's byte-level form, as llama.cpp's Grok-2 converter writes it: regular tokens
 * NORMAL in byte-level spelling, specials CONTROL as their text; the merges of transformers'
 * TikTokenConverter — for every token of two or more bytes, in rank order, each split into two tokens (by the
 * ranks of the left then the right part) — so that llama.cpp, merging the listed pair of lowest index, merges
 * in tiktoken's order (lowest rank of the merged token first).
 */
export function byteLevelFromTiktoken(t: TiktokenTokenizer, pre = 'grok-2'): ByteLevelVocabulary {
  const n = t.vocabSize;
  const tokens: string[] = new Array<string>(n);
  const types = new Int32Array(n);
  const rank = new Map<string, number>(); // regular token bytes (binary string) → id = rank
  const bytes: Uint8Array[] = new Array<Uint8Array>(n);
  for (let id = 0; id < n; id++) {
    bytes[id] = t.idToBytes(id);
    if (t.isSpecial(id)) {
      tokens[id] = new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes[id]);
      types[id] = TOKEN_TYPE.control;
    } else {
      tokens[id] = bytesToByteLevel(bytes[id]!);
      types[id] = TOKEN_TYPE.normal;
      rank.set(Buffer.from(bytes[id]!).toString('latin1'), id);
    }
  }
  const merges: string[] = [];
  const regular = [...rank.values()].sort((a, b) => a - b);
  for (const id of regular) {
    const s = Buffer.from(bytes[id]!).toString('latin1');
    const splits: [number, number][] = [];
    for (let k = 1; k < s.length; k++) {
      const l = rank.get(s.slice(0, k));
      const r = rank.get(s.slice(k));
      if (l !== undefined && r !== undefined) splits.push([l, r]);
    }
    splits.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    for (const [l, r] of splits) merges.push(`${tokens[l]} ${tokens[r]}`);
  }
  return {
    model: 'gpt2', pre, tokens, types, merges,
    bosId: null, eosId: t.eosId >= 0 ? t.eosId : null, padId: t.padId >= 0 ? t.padId : null,
  };
}

/** One entry of a tok.json's regular_tokens / special_tokens. */
export interface TokEntry {
  token: number;
  bytes: number[];
}

/**
 * The tok.json entries of a byte-level GGUF vocabulary: NORMAL tokens are regular (their byte-level spelling
 * read back to bytes; their id is their rank), CONTROL and USER_DEFINED tokens special (their text), UNUSED
 * ones (llama.cpp's `[PAD<id>]` fillers) specials that text never produces. The merges, when present, must
 * merge in id order — else the ids are not BPE ranks and tiktoken's rule would tokenise differently.
 */
export function tokEntriesFromByteLevel(v: { tokens: readonly string[]; types: ArrayLike<number>; merges?: readonly string[] }, source: string): { regular: TokEntry[]; special: TokEntry[] } {
  const regular: TokEntry[] = [];
  const special: TokEntry[] = [];
  const utf8 = new TextEncoder();
  for (let id = 0; id < v.tokens.length; id++) {
    const type = v.types[id]!;
    const tok = v.tokens[id]!;
    if (type === TOKEN_TYPE.normal) {
      const b = byteLevelToBytes(tok);
      if (b === null || b.length === 0) {
        throw new FormatError(source, `tokenizer.ggml.tokens[${id}] ${JSON.stringify(tok.length > 40 ? `${tok.slice(0, 40)}…` : tok)} is not a byte-level token (a character outside GPT-2's byte table)`);
      }
      regular.push({ token: id, bytes: b });
    } else if (type === TOKEN_TYPE.control || type === TOKEN_TYPE.userDefined || type === TOKEN_TYPE.unused) {
      const b = Array.from(utf8.encode(tok));
      if (b.length === 0) throw new FormatError(source, `tokenizer.ggml.tokens[${id}] is an empty special token`);
      special.push({ token: id, bytes: b });
    } else {
      throw new FormatError(source, `tokenizer.ggml.token_type[${id}] is ${type}: a byte-level BPE vocabulary has NORMAL, CONTROL, USER_DEFINED and UNUSED tokens only`);
    }
  }
  if (v.merges) {
    const idOf = new Map<string, number>();
    for (const e of regular) idOf.set(v.tokens[e.token]!, e.token);
    let last = -1;
    for (let k = 0; k < v.merges.length; k++) {
      const m = v.merges[k]!;
      const sp = m.indexOf(' ', 1);
      const merged = sp < 0 ? undefined : idOf.get(m.slice(0, sp) + m.slice(sp + 1));
      if (merged === undefined) throw new FormatError(source, `tokenizer.ggml.merges[${k}] ${JSON.stringify(m)} does not make a token of the vocabulary`);
      if (merged < last) {
        throw new FormatError(source, `tokenizer.ggml.merges[${k}] makes token ${merged} after an earlier merge made token ${last}: this vocabulary's ids are not its BPE ranks, which the grok-2 (tiktoken) tokenizer needs`);
      }
      last = merged;
    }
  }
  return { regular, special };
}

/**
 * The tiktoken tokenizer of a byte-level GGUF vocabulary whose pre-tokenizer is `pre` (only "grok-2": Grok-2's
 * word pattern, V1). Its text goes through the same BPE as tokenizer.tok.json (tiktoken's rule, SGLang's
 * specials), so the ids are the tok.json's.
 */
export function tiktokenFromByteLevel(v: { pre: string; tokens: readonly string[]; types: ArrayLike<number>; merges?: readonly string[] }, source: string): TiktokenTokenizer {
  if (v.pre !== 'grok-2') throw new FormatError(source, `tokenizer.ggml.pre is ${JSON.stringify(v.pre)}; of the byte-level ("gpt2") vocabularies only Grok-2's ("grok-2") is supported`);
  const { regular, special } = tokEntriesFromByteLevel(v, source);
  return TiktokenTokenizer.fromJson({ regular_tokens: regular, special_tokens: special, word_split: 'V1', vocab_size: v.tokens.length }, source);
}
