/**
 * Structured output's view of a tokenizer: every token id as the string XGrammar matches it against
 * (src/engine/grammar.ts). Special and control tokens are given as '' so the grammar never allows them
 * inside the output (XGrammar treats empty tokens as special); the stop ids are allowed once the output is
 * complete. So are tokens holding a control character other than a line feed: JSON allows none raw
 * (RFC 8259 §7: U+0000–U+001F must be escaped in strings; only tab, LF, CR are whitespace), but XGrammar's
 * string rule lets them through, which JSON.parse then rejects. Indentation needs only spaces and LF.
 * Tokens that are not whole UTF-8 (byte tokens ≥ 0x80, byte-level pieces of a character) are left out too:
 * XGrammar accepts a string that closes after an incomplete sequence, which decodes to U+FFFD and breaks
 * length limits; characters outside the vocabulary's whole tokens cannot appear in structured output.
 */
import type { GrammarVocabulary } from '../engine/grammar.js';
import type { TextTokenizer } from '../tokenizer/load.js';
import { Tokenizer } from '../tokenizer/sentencepiece.js';
import { TiktokenTokenizer } from '../tokenizer/tiktoken.js';

/** SentencePiece piece types (sentencepiece_model.proto): 1 normal, 4 user-defined, 6 byte are text. */
const TEXT_PIECES = new Set([1, 4, 6]);

/** GPT-2's byte → printable character map, which XGrammar's 'byte_level' vocabularies use. */
function byteToUnicode(): string[] {
  const map: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    map[b] = String.fromCodePoint(printable ? b : next++);
  }
  return map;
}

/** A control character JSON text cannot hold raw (all below U+0020 but LF). */
const controlByte = (b: number) => b < 0x20 && b !== 0x0a;
const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function wholeUtf8(bytes: Uint8Array): boolean {
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

export function grammarVocabularyOf(tok: TextTokenizer, stopIds: readonly number[]): GrammarVocabulary {
  const n = tok.vocabSize;
  if (tok instanceof Tokenizer) {
    const piece = (i: number): string => {
      const type = tok.pieceType(i);
      if (!TEXT_PIECES.has(type)) return '';
      const p = tok.idToPiece(i);
      const byte = type === 6 ? BYTE_PIECE.exec(p) : null;
      if (byte) { const b = parseInt(byte[1]!, 16); return controlByte(b) || b >= 0x80 ? '' : p; }
      return [...p].some((ch) => controlByte(ch.codePointAt(0)!)) ? '' : p;
    };
    return { type: 'byte_fallback', stopIds, tokens: Array.from({ length: n }, (_, i) => piece(i)) };
  }
  if (tok instanceof TiktokenTokenizer) {
    const m = byteToUnicode();
    const token = (i: number): string => {
      if (tok.isSpecial(i)) return '';
      const bytes = tok.idToBytes(i);
      return bytes.some(controlByte) || !wholeUtf8(bytes) ? '' : Array.from(bytes, (b) => m[b]!).join('');
    };
    return { type: 'byte_level', stopIds, tokens: Array.from({ length: n }, (_, i) => token(i)) };
  }
  throw new Error(`structured output: no grammar vocabulary for a ${tok.constructor.name}`);
}
