// Runs SentencePiece itself (Debian python3-sentencepiece, /usr/bin/python3) as a child process, for the
// tokenizer benchmark and differential test. Not part of the test suite: CI need not have it.
//   apt-get update && apt-get install -y python3-sentencepiece

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const PYTHON = '/usr/bin/python3';

/** One request per line: {"t": text} encode, {"b": base64 bytes} encode raw bytes, {"d": ids} decode. */
const BATCH_SCRIPT = `
import sys, json, base64, sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
out = open(sys.argv[3], 'w')
for line in open(sys.argv[2], encoding='utf-8'):
    q = json.loads(line)
    if 't' in q: r = sp.encode(q['t'])
    elif 'b' in q: r = sp.encode(base64.b64decode(q['b']))
    elif 'p' in q: r = sp.encode(q['p'], out_type=str)
    else: r = sp.decode(q['d'])
    out.write(json.dumps(r) + '\\n')
out.close()
`;

/** Encodes one text file whole, timed around the encode call only; writes ids as int32. */
const BENCH_SCRIPT = `
import sys, time, array, sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
text = open(sys.argv[2], encoding='utf-8', newline='').read()
sp.encode(text[:100000])
best = None
for _ in range(int(sys.argv[4])):
    t0 = time.perf_counter(); ids = sp.encode(text); dt = time.perf_counter() - t0
    best = dt if best is None else min(best, dt)
array.array('i', ids).tofile(open(sys.argv[3], 'wb'))
print(best)
`;

export type SpRequest = { t: string } | { b: string } | { p: string } | { d: number[] };

export function checkPython(): void {
  const r = spawnSync(PYTHON, ['-c', 'import sentencepiece; print(sentencepiece.__version__)'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${PYTHON} cannot import sentencepiece; run: apt-get update && apt-get install -y python3-sentencepiece\n${r.stderr}`);
}

export function spVersion(): string {
  return spawnSync(PYTHON, ['-c', 'import sentencepiece; print(sentencepiece.__version__)'], { encoding: 'utf8' }).stdout.trim();
}

function run(script: string, args: string[]): string {
  const r = spawnSync(PYTHON, ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`SentencePiece child failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Answers a batch of requests with SentencePiece; results in order (ids arrays or strings). */
export function spBatch(model: string, reqs: SpRequest[]): unknown[] {
  const dir = mkdtempSync(path.join(tmpdir(), 'sp-'));
  try {
    const inp = path.join(dir, 'in.jsonl');
    const outp = path.join(dir, 'out.jsonl');
    writeFileSync(inp, reqs.map((q) => JSON.stringify(q)).join('\n') + '\n');
    run(BATCH_SCRIPT, [model, inp, outp]);
    const lines = readFileSync(outp, 'utf8').split('\n');
    return reqs.map((_, i) => JSON.parse(lines[i]) as unknown);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Encodes `text` with SentencePiece; returns its ids and the best time of `reps` runs (seconds). */
export function spEncodeTimed(model: string, text: string, reps: number): { ids: Int32Array; seconds: number } {
  if (!existsSync(model)) throw new Error(`no tokenizer at ${model}`);
  const dir = mkdtempSync(path.join(tmpdir(), 'sp-'));
  try {
    const inp = path.join(dir, 'text.txt');
    const outp = path.join(dir, 'ids.bin');
    writeFileSync(inp, text, 'utf8');
    const seconds = Number(run(BENCH_SCRIPT, [model, inp, outp, String(reps)]).trim());
    const b = readFileSync(outp);
    return { ids: new Int32Array(b.buffer, b.byteOffset, b.length / 4), seconds };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
