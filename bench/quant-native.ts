/**
 * The native quantisers (native/quantize.c) against the TypeScript ones they reproduce, one thread, on rows
 * of 6144 N(0, 0.02²) values (Grok-1's D): MB/s of output, measured in CPU time of this thread (the VM is
 * shared, so wall time mostly measures the neighbours), median of the repetitions, A/B interleaved. Every
 * native result is checked byte-identical to the TypeScript one first.
 *
 * --imatrix: the quantisers with importance weights (llama-quantize --imatrix; src/quant/weighted.ts), weights
 * spread over four decades with a few zeros, for the types that take them.
 *
 *   npx tsc -p . && node dist/bench/quant-native.js [--rows 256] [--reps 5] [--types q8_0,q4_k] [--isa avx2] [--imatrix]
 */
import { parseArgs } from 'node:util';
import { nativeQuantizer, nativeWeightedQuantizer } from '../src/kernels/native.js';
import { blockFormat, rowBytes, type BlockType } from '../src/quant/index.js';
import { quantizeRowsWeighted, WEIGHTED_TYPES } from '../src/quant/weighted.js';
import { gaussianFill } from '../src/convert/pool-jobs.js';
import { mulberry32 } from '../test/random.js';

const ALL: BlockType[] = ['f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q2_k', 'q3_k', 'q4_k', 'q5_k', 'q6_k', 'iq4_nl', 'iq4_xs', 'iq3_s'];
const { values } = parseArgs({ options: { rows: { type: 'string' }, reps: { type: 'string' }, types: { type: 'string' }, isa: { type: 'string' }, imatrix: { type: 'boolean' } } });
const ROW = 6144;
const ROWS = Number(values.rows ?? 256);
const REPS = Number(values.reps ?? 5);
const weighted = values.imatrix === true;
const types = (values.types?.split(',') ?? (weighted ? [...WEIGHTED_TYPES] : ALL)) as BlockType[];
const plain = nativeQuantizer(values.isa);
const withWeights = nativeWeightedQuantizer(values.isa);
if (!plain || !withWeights) throw new Error('the native addon does not load here (npm run build)');
const rnd = mulberry32(5);
const qw = new Float32Array(ROW).map(() => (rnd() < 0.01 ? 0 : 10 ** (4 * rnd() - 2)));
const q = (t: BlockType, v: Float32Array, nIn: number, rows: number, dst: Uint8Array) => (weighted ? withWeights(t, v, nIn, rows, dst, qw) : plain(t, v, nIn, rows, dst));

const x = new Float32Array(ROWS * ROW);
gaussianFill(x, 1, 0.02);

/** CPU seconds of this process for f(). */
function cpu(f: () => void): number {
  const t0 = process.cpuUsage();
  f();
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / 1e6;
}

const median = (a: number[]) => [...a].sort((p, r) => p - r)[Math.floor(a.length / 2)]!;

console.log(`rows ${ROWS} × ${ROW}${weighted ? ' with importance weights' : ''}, median of ${REPS} (A/B interleaved), level ${values.isa ?? process.env.GROK_NATIVE_ISA ?? 'best'}; node ${process.version}`);
console.log('type     native MB/s   TypeScript MB/s   speed-up');
for (const t of types) {
  const f = blockFormat(t);
  const rb = rowBytes(f, ROW);
  const a = new Uint8Array(ROWS * rb);
  const b = new Uint8Array(ROWS * rb);
  // TypeScript on fewer rows for the slow K-quant searches (its speed does not depend on the row count)
  const tsRows = Math.max(1, Math.min(ROWS, Math.round((ROWS * 8) / (t === 'iq3_s' ? 2048 : weighted || t.endsWith('_k') || t.startsWith('iq4') ? 256 : 8))));
  const nat: number[] = [];
  const ts: number[] = [];
  for (let r = 0; r < REPS; r++) {
    nat.push(cpu(() => q(t, x, ROW, ROWS, a)));
    ts.push(cpu(() => {
      if (weighted) quantizeRowsWeighted(t, x, 0, ROW, tsRows, b, 0, qw);
      else for (let i = 0; i < tsRows; i++) f.quantize!(x, i * ROW, ROW, b, i * rb);
    }));
    if (r === 0 && Buffer.compare(a.subarray(0, tsRows * rb), b.subarray(0, tsRows * rb)) !== 0) throw new Error(`${t}: native and TypeScript bytes differ`);
  }
  const mbN = a.length / median(nat) / 1e6;
  const mbT = (tsRows * rb) / median(ts) / 1e6;
  console.log(`${t.padEnd(8)} ${mbN.toFixed(1).padStart(11)} ${mbT.toFixed(2).padStart(17)} ${(mbN / mbT).toFixed(0).padStart(10)}×`);
}
