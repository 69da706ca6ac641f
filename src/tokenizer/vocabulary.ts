/**
 * A SentencePiece vocabulary as flat arrays (pieces, scores, types, special ids, normaliser flags): the form
 * GGUF stores (tokenizer.ggml.*, see the GGUF spec) and the form a parsed tokenizer.model is turned into.
 */
import { normalizerDefaults, trainerDefaults, type ModelProto } from './protobuf.js';

const NORMAL = 1;
const USER_DEFINED = 4;

/** A SentencePiece-style vocabulary as GGUF stores it (tokenizer.ggml.*, ggml docs/gguf.md); `type` uses the SentencePiece numbers 1 … 6. */
export interface GgufVocabulary {
  tokens: readonly string[];
  scores: ArrayLike<number>;
  types: ArrayLike<number>;
  bosId: number;
  eosId: number;
  unkId: number;
  /** omitted from the file when null */
  padId: number | null;
  addSpacePrefix: boolean;
  removeExtraWhitespaces: boolean;
}

/**
 * The vocabulary of a parsed tokenizer.model (src/tokenizer/protobuf.ts readModelProto).
 * USER_DEFINED pieces (Grok-1: runs of "\n", "\t", spaces, and the digits) are stored as NORMAL:
 * llama.cpp matches USER_DEFINED pieces in the raw text before escaping spaces, which SentencePiece does
 * not, so with the original types llama.cpp tokenised only 77 of the 198 Grok-1 golden samples like
 * SentencePiece; as NORMAL, all 198 (test/convert-llama.test.ts). Our own tokenizer gives the SentencePiece
 * ids from either form.
 */
export function vocabularyFromModelProto(m: ModelProto): GgufVocabulary {
  const t = m.trainerSpec ?? {};
  const n = m.pieces.length;
  const id = (v: number | undefined, d: number) => (v === undefined ? d : v);
  const pad = id(t.padId, trainerDefaults.padId);
  return {
    tokens: m.pieces.map((p) => p.piece),
    scores: Float32Array.from(m.pieces, (p) => p.score),
    types: Int32Array.from(m.pieces, (p) => (p.type === USER_DEFINED ? NORMAL : p.type)),
    bosId: id(t.bosId, trainerDefaults.bosId),
    eosId: id(t.eosId, trainerDefaults.eosId),
    unkId: id(t.unkId, trainerDefaults.unkId),
    padId: pad >= 0 && pad < n ? pad : null,
    addSpacePrefix: m.normalizerSpec?.addDummyPrefix ?? normalizerDefaults.addDummyPrefix,
    removeExtraWhitespaces: m.normalizerSpec?.removeExtraWhitespaces ?? normalizerDefaults.removeExtraWhitespaces,
  };
}
