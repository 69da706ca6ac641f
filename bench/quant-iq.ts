/**
 * The grid-search i-quant quantisers (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ1_S, IQ1_M: src/quant, TypeScript) beside
 * llama.cpp's own quantize_<type> (bench/quant-iq-peer.c against node-llama-cpp's libggml-base), on the same rows
 * (N(0, 0.02²), Grok-1's d_model 6144 per row) and importance weights, one thread each, runs interleaved; prints
 * MB/s of f32 input and of output, the medians, the ratio ours / llama.cpp's, and checks that the bytes are equal.
 *
 *   node dist/bench/quant-iq.js [--rows 16] [--nin 6144] [--runs 3] [--types iq2_xs,iq2_xxs,…]
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { blockFormat, type BlockType } from '../src/quant/index.js';
import { quantizeRowsWeighted } from '../src/quant/weighted.js';

const { values: opt } = parseArgs({
  options: {
    rows: { type: 'string', default: '16' }, nin: { type: 'string', default: '6144' }, runs: { type: 'string', default: '3' },
    types: { type: 'string', default: 'iq2_xs,iq2_xxs,iq2_s,iq3_xxs,iq1_s,iq1_m' },
  },
});
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const rows = Number(opt.rows), nIn = Number(opt.nin), runs = Number(opt.runs);
const types = opt.types!.split(',') as BlockType[];
if (!(nIn > 0 && nIn % 256 === 0) || !(rows > 0)) throw new Error('--nin must be a multiple of 256, --rows positive');

// deterministic inputs: N(0, 0.02²) weights-like values, importance spread over four decades with 1 % zeros
let s = 0x9e3779b9;
const u = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return (s + 0.5) / 4294967296; };
const x = new Float32Array(rows * nIn).map(() => 0.02 * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
const w = new Float32Array(nIn).map(() => (u() < 0.01 ? 0 : 10 ** (4 * u() - 2)));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-quant-iq-'));
fs.writeFileSync(path.join(dir, 'x.f32'), x);
fs.writeFileSync(path.join(dir, 'w.f32'), w);

const lib = path.join(ROOT, 'peer', 'node_modules', '@node-llama-cpp', `${process.platform}-${process.arch}`, 'bins', `${process.platform}-${process.arch}`);
const bin = path.join(dir, 'quant-iq-peer');
const cc = fs.existsSync(path.join(lib, 'libggml-base.so'))
  ? spawnSync(process.env.CC ?? 'cc', ['-O2', '-o', bin, path.join(ROOT, 'bench', 'quant-iq-peer.c'), path.join(lib, 'libggml-base.so'), `-Wl,-rpath,${lib}`, '-lm'], { encoding: 'utf8' })
  : undefined;
const peer = cc?.status === 0;
const flags = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:\s*(.*)$/m)?.[1] ?? '').split(' ');
console.log(`i-quant quantisers, ${rows} rows × ${nIn}, one thread; ${os.cpus()[0]?.model} × ${os.availableParallelism()} (${['avx2', 'fma', 'avx512f', 'avx512_vnni'].filter((f) => flags.includes(f)).join(' ')}), node ${process.version}; load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log(peer ? `peer: llama.cpp quantize_<type> (${lib}/libggml-base.so)` : `peer: not run (${cc ? cc.stderr.trim().split('\n')[0] : 'node-llama-cpp\'s libggml-base.so is not installed'})`);

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const inMB = (4 * rows * nIn) / 1e6;
try {
  for (const type of types) {
    const f = blockFormat(type);
    const out = new Uint8Array(rows * (nIn / 256) * f.bytesPerBlock);
    quantizeRowsWeighted(type, x, 0, nIn, 1, out, 0, w); // the grid tables, built once (not timed)
    const ours: number[] = [], theirs: number[] = [];
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      quantizeRowsWeighted(type, x, 0, nIn, rows, out, 0, w);
      ours.push((performance.now() - t0) / 1000);
      if (peer) {
        const p = spawnSync(bin, [dir, String(rows), String(nIn), type], { encoding: 'utf8' });
        if (p.status !== 0) throw new Error(`peer: ${p.stderr}`);
        theirs.push(Number(p.stdout.trim().split(' ')[1]));
      }
    }
    const same = peer ? Buffer.from(out).equals(fs.readFileSync(path.join(dir, `${type}.peer.q`))) : undefined;
    const mo = median(ours);
    let line = `${type.padEnd(8)} ours ${(inMB / mo).toFixed(2).padStart(6)} MB/s in (${(out.length / 1e6 / mo).toFixed(3)} MB/s out), runs ${ours.map((t) => (inMB / t).toFixed(2)).join(' ')}`;
    if (peer) {
      const mt = median(theirs);
      line += ` | llama.cpp ${(inMB / mt).toFixed(2).padStart(6)} MB/s in, runs ${theirs.map((t) => (inMB / t).toFixed(2)).join(' ')} | ratio ${(mt / mo).toFixed(2)}× | bytes ${same ? 'equal' : 'DIFFER'}`;
    }
    console.log(line);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
