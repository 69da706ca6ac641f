// Grok-2 tokenizer benchmark: encode throughput (MB/s of UTF-8) of TiktokenTokenizer on
//  - golden: the golden texts (test/data/tokenizer/grok2/golden.json: English, code, whitespace, CJK, emoji,
//    specials, long and random mixes) repeated to --mb, as one text and as one call per text;
//  - mixed: --mb of non-repeating mixed text (prose, code, numbers, whitespace runs, multilingual; the corpus of
//    bench/tokenize.ts, bench/tokenize-corpus.ts) on a fresh tokenizer each run, so its caches start empty;
// decode throughput; and, when the npm package `tiktoken` (its Rust core in WebAssembly) is found, the same runs
// through it with a check that both give the same ids. tiktoken is not a dependency: install it aside, e.g.
//   npm install --prefix /tmp/tk tiktoken
//   npx tsc -p . && node dist/bench/tokenize-grok2.js [--mb 4] [--reps 5] [--tiktoken /tmp/tk/node_modules/tiktoken]
// Times are the best of --reps runs.

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { TiktokenTokenizer, V1_PATTERN, sglangAllowsSpecial } from '../src/tokenizer/tiktoken.js';
import { DATA } from '../test/fixtures.js';
import { buildBenchText } from './tokenize-corpus.js';

const { values } = parseArgs({
  options: {
    mb: { type: 'string', default: '4' },
    reps: { type: 'string', default: '5' },
    tokenizer: { type: 'string', default: path.join(DATA, 'tokenizer', 'grok2', 'tokenizer.tok.json') },
    golden: { type: 'string', default: path.join(DATA, 'tokenizer', 'grok2', 'golden.json') },
    tiktoken: { type: 'string', default: '/tmp/tk/node_modules/tiktoken' },
  },
});
const reps = Math.max(1, Number(values.reps));
const file = values.tokenizer!;

/** Best time in seconds of `reps` runs of f (each run gets a fresh setup()). */
function best<S>(setup: () => S, f: (s: S) => void): number {
  let b = Infinity;
  for (let r = 0; r < reps; r++) {
    const s = setup();
    const t0 = performance.now();
    f(s);
    b = Math.min(b, (performance.now() - t0) / 1000);
  }
  return b;
}

let t0 = performance.now();
const tok = TiktokenTokenizer.fromFile(file);
const loadS = (performance.now() - t0) / 1000;
const json = JSON.parse(readFileSync(file, 'utf8')) as { regular_tokens: { token: number; bytes: number[] }[]; special_tokens: { token: number; bytes: number[] }[]; pat_str?: string };

const golden = JSON.parse(readFileSync(values.golden!, 'utf8')) as { encode: { text: string }[] };
const texts: string[] = [];
for (let bytes = 0; bytes < Number(values.mb) * 1e6; ) {
  for (const c of golden.encode) {
    texts.push(c.text);
    bytes += Buffer.byteLength(c.text, 'utf8') + 1;
  }
}
const goldenText = texts.join('\n');
const mixedText = buildBenchText(json.regular_tokens.map((t) => tok.idToPiece(t.token)), Math.round(Number(values.mb) * 1e6));
const mbOf = (s: string): number => Buffer.byteLength(s, 'utf8') / 1e6;

interface Runner {
  name: string;
  fresh(): { encode(t: string): ArrayLike<number> };
  decode(ids: ArrayLike<number>): string;
  load: number;
}

const ours: Runner = {
  name: 'grok-ts TiktokenTokenizer',
  fresh: () => TiktokenTokenizer.fromFile(file),
  decode: (ids) => tok.decode(ids),
  load: loadS,
};
const runners: Runner[] = [ours];

// tiktoken (npm, Rust core compiled to WebAssembly), configured as SGLang configures Python tiktoken.
if (existsSync(values.tiktoken!)) {
  const { Tiktoken } = createRequire(import.meta.url)(path.resolve(values.tiktoken!)) as {
    Tiktoken: new (bfe: string, specials: Record<string, number>, pat: string) => {
      encode(text: string, allowed?: string[] | 'all', disallowed?: string[] | 'all'): Uint32Array;
      decode(ids: Uint32Array): Uint8Array;
    };
  };
  t0 = performance.now();
  const bfe = json.regular_tokens.map((t) => `${Buffer.from(t.bytes).toString('base64')} ${t.token}`).join('\n');
  const specials: Record<string, number> = {};
  for (const t of json.special_tokens) specials[Buffer.from(t.bytes).toString('utf8')] = t.token;
  const enc = new Tiktoken(bfe, specials, json.pat_str ?? V1_PATTERN);
  const load = (performance.now() - t0) / 1000;
  // 'all' when every special is in SGLang's set (true of Grok-2's): an array becomes a set on every call
  const list = Object.keys(specials).filter(sglangAllowsSpecial);
  const allowed = list.length === Object.keys(specials).length ? 'all' : list;
  const version = (JSON.parse(readFileSync(path.join(values.tiktoken!, 'package.json'), 'utf8')) as { version: string }).version;
  const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });
  runners.push({
    name: `tiktoken ${version} (npm, WebAssembly)`,
    fresh: () => ({ encode: (t: string) => enc.encode(t, allowed, []) }), // no cache to reset
    decode: (ids) => utf8.decode(enc.decode(Uint32Array.from(ids))),
    load,
  });
}

const rows: string[][] = [];
const secs: number[][] = [];
let reference: ArrayLike<number>[] = [];
for (const r of runners) {
  const out: ArrayLike<number>[] = [];
  const s = [
    best(() => r.fresh(), (t) => { out[0] = t.encode(goldenText); }),
    best(() => r.fresh(), (t) => { for (const x of texts) t.encode(x); }),
    best(() => r.fresh(), (t) => { out[1] = t.encode(mixedText); }),
  ];
  let text = '';
  const dec = best(() => null, () => { text = r.decode(out[1]); });
  if (text !== mixedText) throw new Error(`${r.name}: decode(encode(text)) is not the text`);
  if (reference.length === 0) reference = out;
  else {
    for (let k = 0; k < out.length; k++) {
      const a = reference[k], b = out[k];
      if (a.length !== b.length || Array.prototype.some.call(a, (v: number, i: number) => v !== b[i])) throw new Error(`${r.name}: ids differ from grok-ts's`);
    }
  }
  secs.push(s);
  rows.push([r.name, (mbOf(goldenText) / s[0]).toFixed(1), (mbOf(goldenText) / s[1]).toFixed(1), (mbOf(mixedText) / s[2]).toFixed(1), (mbOf(mixedText) / dec).toFixed(0), r.load.toFixed(2)]);
}

console.log(`golden ${mbOf(goldenText).toFixed(1)} MB (${texts.length} texts, ${reference[0].length} tokens), mixed ${mbOf(mixedText).toFixed(1)} MB (${reference[1].length} tokens); best of ${reps}; ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`);
const head = ['', 'golden MB/s (one text)', 'golden MB/s (per text)', 'mixed MB/s (cold)', 'decode MB/s', 'load s'];
const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
for (const r of [head, ...rows]) console.log(r.map((c, i) => (i === 0 ? c.padEnd(width[i]) : c.padStart(width[i]))).join('  '));
if (secs.length > 1) console.log(`grok-ts / tiktoken speed: ${secs[1].map((s, i) => (s / secs[0][i]).toFixed(2)).join(' / ')} (golden one text / per text / mixed); ids identical`);
else console.log(`tiktoken not found at ${values.tiktoken} (npm install --prefix /tmp/tk tiktoken to compare)`);
