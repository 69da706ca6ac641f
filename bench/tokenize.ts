// Tokenizer benchmark: encode throughput of grok-ts against SentencePiece itself on the same few MB of mixed
// text (sources: bench/tokenize-corpus.ts), and a check that both give identical ids.
//   npx tsc -p . && node dist/bench/tokenize.js [--mb 4] [--reps 3] [--tokenizer test/data/tokenizer/grok-1-tokenizer.model]
// Needs /usr/bin/python3 with python3-sentencepiece (Debian). Times are the best of --reps runs; every one of
// our runs uses a tokenizer with an empty word cache (the cache only helps within the call).

import { readFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { Tokenizer } from '../src/tokenizer/sentencepiece.js';
import { buildBenchText } from './tokenize-corpus.js';
import { checkPython, spEncodeTimed, spVersion } from './tokenize-sp.js';
import { TOKENIZER_MODEL } from '../test/fixtures.js';

const { values } = parseArgs({
  options: {
    mb: { type: 'string', default: '4' },
    reps: { type: 'string', default: '3' },
    tokenizer: { type: 'string', default: TOKENIZER_MODEL },
  },
});
const modelPath = values.tokenizer!;
const reps = Math.max(1, Number(values.reps));
checkPython();

const bytes = readFileSync(modelPath);
let t0 = performance.now();
const tok = Tokenizer.fromModelProto(bytes, modelPath);
const loadMs = performance.now() - t0;
const pieces = Array.from({ length: tok.vocabSize }, (_, i) => tok.idToPiece(i));
const text = buildBenchText(pieces, Math.round(Number(values.mb) * (1 << 20)));
const mb = Buffer.byteLength(text, 'utf8') / 1e6;

// Ours: best of `reps`, each on a fresh tokenizer (cold cache).
const fresh = Array.from({ length: reps }, () => Tokenizer.fromModelProto(bytes, modelPath));
let best = Infinity;
let ids: number[] = [];
for (const t of fresh) {
  t0 = performance.now();
  ids = t.encode(text);
  best = Math.min(best, (performance.now() - t0) / 1000);
}
// Warm: the same text again on a tokenizer whose cache is filled.
t0 = performance.now();
fresh[0].encode(text);
const warm = (performance.now() - t0) / 1000;

t0 = performance.now();
const decoded = tok.decode(ids);
const decodeS = (performance.now() - t0) / 1000;

const sp = spEncodeTimed(modelPath, text, reps);
let firstDiff = -1;
const n = Math.max(ids.length, sp.ids.length);
for (let i = 0; i < n; i++) {
  if (ids[i] !== sp.ids[i]) {
    firstDiff = i;
    break;
  }
}

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
console.log(`machine: ${cpu}, ${os.cpus().length} cores; node ${process.version}; SentencePiece ${spVersion()} (Python binding)`);
console.log(`text: ${mb.toFixed(2)} MB UTF-8, ${text.length} UTF-16 units, ${ids.length} tokens`);
console.log(`load tokenizer.model: ${loadMs.toFixed(0)} ms`);
console.log(`grok-ts encode (cold cache): ${(mb / best).toFixed(2)} MB/s (${best.toFixed(3)} s)`);
console.log(`grok-ts encode (warm cache): ${(mb / warm).toFixed(2)} MB/s (${warm.toFixed(3)} s)`);
console.log(`SentencePiece encode:        ${(mb / sp.seconds).toFixed(2)} MB/s (${sp.seconds.toFixed(3)} s)`);
console.log(`ratio ours/theirs (cold): ${(sp.seconds / best).toFixed(2)}x`);
console.log(`grok-ts decode: ${(mb / decodeS).toFixed(2)} MB/s; decode(encode(text)) === text with U+2581 as space: ${decoded === text.replaceAll('\u2581', ' ')}`);
console.log(firstDiff < 0 ? `ids identical (${ids.length} tokens)` : `IDS DIFFER at token ${firstDiff}: ours ${ids.slice(firstDiff, firstDiff + 8)} theirs ${Array.from(sp.ids.slice(firstDiff, firstDiff + 8))}`);
let bad = firstDiff >= 0;

// Worst cases for BPE: one 500 K-character segment (no word boundary), merged over one big priority queue.
console.log('single-segment runs of 500 K UTF-16 units (best of 1):');
for (const [name, unit] of [['"a" repeated', 'a'], ['spaces', ' '], ['CJK "日本語" repeated', '日本語']] as const) {
  const run = unit.repeat(Math.ceil(500_000 / unit.length));
  const t = Tokenizer.fromModelProto(bytes, modelPath);
  t0 = performance.now();
  const ours = t.encode(run);
  const s = (performance.now() - t0) / 1000;
  const theirs = spEncodeTimed(modelPath, run, 1);
  const same = ours.length === theirs.ids.length && ours.every((v, i) => v === theirs.ids[i]);
  bad ||= !same;
  console.log(`  ${name.padEnd(22)} grok-ts ${s.toFixed(2)} s, SentencePiece ${theirs.seconds.toFixed(2)} s, ratio ${(theirs.seconds / s).toFixed(2)}x, ids ${same ? 'identical' : 'DIFFER'}`);
}
process.exitCode = bad ? 1 : 0;
