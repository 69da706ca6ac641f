/**
 * The two tokenizer families behind one shape: SentencePiece `tokenizer.model` (Grok-1) and tiktoken-style
 * `tokenizer.tok.json` (Grok-2), told apart by the file's content.
 */
import fs from 'node:fs';
import path from 'node:path';
import { readSmallFile } from '../base/files.js';
import { FormatError } from '../base/errors.js';
import { Tokenizer, type StreamDecoder } from './sentencepiece.js';
import { TiktokenTokenizer, looksLikeTokJson } from './tiktoken.js';

/** What the CLI and the API use of a tokenizer; both Tokenizer and TiktokenTokenizer have it. */
export interface TextTokenizer {
  readonly source: string;
  readonly vocabSize: number;
  /** -1 when the tokenizer has none */
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  encode(text: string | Uint8Array, opts?: { bos?: boolean; eos?: boolean }): number[];
  encodeAsPieces(text: string | Uint8Array): string[];
  decode(ids: ArrayLike<number>): string;
  idToPiece(id: number): string;
  createStreamDecoder(): StreamDecoder;
}

/** Loads a tokenizer file: JSON (its first non-blank byte is `{`) is a tok.json, anything else a SentencePiece model. */
export function loadTokenizerFile(path: string): TextTokenizer {
  let bytes: Uint8Array;
  try {
    bytes = readSmallFile(path, 512 << 20);
  } catch (e) {
    throw e instanceof FormatError ? new FormatError(path, `cannot read tokenizer file: ${e.detail.replace(/^cannot open: /, '')}`) : e;
  }
  return looksLikeTokJson(bytes) ? TiktokenTokenizer.fromBytes(bytes, path) : Tokenizer.fromModelProto(bytes, path);
}

/**
 * The tokenizer file shipped with a checkpoint or release folder: tokenizer.model (Grok-1, whose release
 * keeps it beside ckpt-0) or tokenizer.tok.json (Grok-2), in the model's folder or up to two folders above.
 */
export function findTokenizerNear(modelPath: string): string | null {
  let dir = fs.statSync(modelPath).isDirectory() ? modelPath : path.dirname(modelPath);
  for (let i = 0; i < 3; i++) {
    for (const name of ['tokenizer.model', 'tokenizer.tok.json']) {
      const p = path.join(dir, name);
      if (fs.existsSync(p)) return p;
    }
    dir = path.dirname(dir);
  }
  return null;
}
