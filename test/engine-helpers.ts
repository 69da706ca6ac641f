/**
 * Shared by the engine / server tests: the fixture models (real weights) and a small SentencePiece-style
 * tokenizer with exactly a fixture's vocabulary size, so text-level behaviour (streaming decode, stop
 * strings, the HTTP server) is tested on a real model without depending on the default model.
 *
 * Vocabulary: 0 [PAD], 1 [BOS], 2 [EOS], 3 <unk>, the 256 <0xHH> byte pieces, then single characters and
 * word prefixes (so every word below has a chain of merges), cut to the model's vocabulary size.
 */
import path from 'node:path';
import { Tokenizer, type PieceEntry } from '../src/tokenizer/sentencepiece.js';
import type { TextTokenizer } from '../src/tokenizer/load.js';
import { loadModel as loadGrokModel } from '../src/model/loader.js';
import type { GrokModel } from '../src/model/grok.js';
import { fixtureDir } from './fixtures.js';
import type { GenerationRequest } from '../src/engine/scheduler.js';

export { fixtureDir, golden, type Golden } from './fixtures.js';


const cache = new Map<string, Promise<GrokModel>>();
export function fixtureModel(name: string): Promise<GrokModel> {
  let p = cache.get(name);
  if (!p) {
    p = loadGrokModel(path.join(fixtureDir(name), 'ckpt-0')).then((r) => r.model);
    cache.set(name, p);
  }
  return p;
}

const WORDS = (
  'the of and to in is that it was for on are as with his they at be this from have or by one had not but what all were ' +
  'when we there can an your which their said if do will each about how up out them then she many some so these would ' +
  'other into has more her two like him see time could no make than first been its who now people my made over did down ' +
  'only way find use may water long little very after words called just where most know get through back much before ' +
  'go good new write our used me man too any day same right look think also around another came come work three word must ' +
  'because does part even place well such here take why things help put years different away again off went old number'
).split(' ');

export function testTokenizer(vocabSize: number): Tokenizer {
  const pieces: PieceEntry[] = [
    { piece: '[PAD]', score: 0, type: 3 },
    { piece: '[BOS]', score: 0, type: 3 },
    { piece: '[EOS]', score: 0, type: 3 },
    { piece: '<unk>', score: 0, type: 2 },
  ];
  for (let b = 0; b < 256; b++) pieces.push({ piece: `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, score: 0, type: 6 });
  const normal: string[] = [];
  const add = (p: string) => { if (!normal.includes(p)) normal.push(p); };
  add('\u2581');
  for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?;:\'"-()\n') add(c);
  for (const w of WORDS) {
    const s = `\u2581${w}`;
    for (let n = 2; n <= s.length; n++) add(s.slice(0, n));
  }
  const room = vocabSize - pieces.length;
  if (normal.length < room) for (let i = 0; normal.length < room; i++) add(`\u2581w${i}`);
  normal.length = room;
  // Longer pieces score higher so whole words win, as a trained BPE's merge order would.
  normal.forEach((p, i) => pieces.push({ piece: p, score: p.length * 1000 - i, type: 1 }));
  return Tokenizer.fromPieces(pieces, { bosId: 1, eosId: 2, padId: 0, unkId: 3 }, `test tokenizer (${vocabSize} pieces)`);
}

/** The text a continuation adds: decode(prompt + ids) after decode(prompt) (independent of src/api). */
export function continuation(tok: TextTokenizer, prompt: readonly number[], ids: readonly number[]): string {
  const before = tok.decode(prompt);
  const all = tok.decode([...prompt, ...ids]);
  if (!all.startsWith(before)) throw new Error('decode(prompt) is not a prefix of decode(prompt + ids)');
  return all.slice(before.length);
}

/** The token ids of a request, in order, once it ends. */
export async function collect(r: GenerationRequest): Promise<number[]> {
  const ids: number[] = [];
  for await (const t of r) ids.push(t.id);
  return ids;
}
