/**
 * The test data kept in the repository (test/data): the fixture models with their float64 goldens and the
 * real Grok-1 tokenizer with SentencePiece's goldens, both computed by independent references and copied
 * here unchanged (test/data/fixtures/README.md), so a plain clone's tests pass.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** test/data, found from this file (dist/test/fixtures.js → ../../test/data), not from the working directory. */
export const DATA = fileURLToPath(new URL('../../test/data/', import.meta.url));
export const TOKENIZER_MODEL = path.join(DATA, 'tokenizer', 'grok-1-tokenizer.model');
export const TOKENIZER_GOLDEN = path.join(DATA, 'tokenizer', 'grok-1-golden.json');
export const FIXTURES = ['tiny-a', 'tiny-b'] as const;

export interface Golden {
  config: Record<string, number>;
  tokens: number[];
  top5: number[][];
  greedy: { prompt: number[]; continuation: number[] };
  layers: { layer: number; experts: number[][]; hidden_rms: number[] }[];
}

export function fixtureDir(name: string): string {
  return path.join(DATA, 'fixtures', name);
}

export function golden(name: string): Golden {
  return JSON.parse(fs.readFileSync(path.join(fixtureDir(name), 'golden.json'), 'utf8')) as Golden;
}

export function goldenLogits(name: string, file = 'logits.f32'): Float32Array {
  const b = fs.readFileSync(path.join(fixtureDir(name), file));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

/** Indices of the k largest values, largest first. */
export function topK(a: Float32Array, k: number): number[] {
  return Array.from(a.keys()).sort((x, y) => a[y]! - a[x]! || x - y).slice(0, k);
}
