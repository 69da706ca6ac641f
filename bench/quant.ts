/**
 * Block-format micro-benchmark: scalar dequantise and dot throughput (GB/s of quantised bytes read, and
 * Mvalues/s), quantise throughput, and the relative RMS error of N(0, 0.02²) weights, per format. Each format is validated first: dequantise-then-dot
 * must equal dot (float64, 1e-12 relative), so a broken fast path can never post a number.
 *
 *   npx tsc -p . && node dist/bench/quant.js [--values 4194304] [--reps 3] [--types q8_0,q4_k]
 *
 * Then the checkpoint form (int8 [in, out] + bf16 scales): column dot, transposition into GGUF rows, and
 * the exact int8 → Q8_0 conversion that `grok convert` uses (validated: dequantised Q8_0 = q·s exactly).
 */
import { parseArgs } from 'node:util';
import type { Xai8Matrix } from '../src/quant/matrix.js';
import { blockFormat, rowBytes, type BlockType } from '../src/quant/index.js';
import { xai8Dot, xai8Rows, xai8RowsToQ8_0 } from '../src/quant/xai8.js';

const ALL: BlockType[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q2_k', 'q3_k', 'q4_k', 'q5_k', 'q6_k', 'iq4_nl'];

const { values } = parseArgs({ options: { values: { type: 'string' }, reps: { type: 'string' }, types: { type: 'string' } } });
const N = Number(values.values ?? 1 << 22);
const REPS = Number(values.reps ?? 3);
const types = (values.types?.split(',') ?? ALL) as BlockType[];
const ROW = 6144; // Grok-1's D: rows of one matrix

function gaussian(n: number): Float32Array {
  let s = 12345;
  const u = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return (s + 0.5) / 4294967296; };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = 0.02 * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

/** Best of REPS timings, in seconds. */
function time(f: () => void): number {
  let best = Infinity;
  for (let r = 0; r < REPS; r++) {
    const t0 = process.hrtime.bigint();
    f();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return best;
}

const n = Math.floor(N / ROW) * ROW;
const x = gaussian(n);
const act = gaussian(ROW);
console.log(`values ${n} (${n / ROW} rows of ${ROW}), best of ${REPS}; node ${process.version}`);
console.log('type    bytes/val  rel.RMS err  quantise Mval/s  dequantise GB/s  Mval/s   dot GB/s  Mval/s');
for (const t of types) {
  const f = blockFormat(t);
  const rb = rowBytes(f, ROW);
  const rows = n / ROW;
  const q = new Uint8Array(rows * rb);
  const tq = time(() => { for (let r = 0; r < rows; r++) f.quantize!(x, r * ROW, ROW, q, r * rb); });
  // validate: dot == dequantise-then-dot on a few rows
  const y = new Float32Array(ROW);
  for (let r = 0; r < Math.min(rows, 8); r++) {
    f.dequantize(q, r * rb, ROW, y, 0);
    let ref = 0, mag = 0;
    for (let i = 0; i < ROW; i++) { ref += y[i]! * act[i]!; mag += Math.abs(y[i]! * act[i]!); }
    const d = f.dot(q, r * rb, act, 0, ROW);
    if (!(Math.abs(d - ref) <= 1e-12 * mag)) throw new Error(`${t}: dot ${d} ≠ dequantise-then-dot ${ref} (row ${r})`);
  }
  const out = new Float32Array(n);
  const td = time(() => { for (let r = 0; r < rows; r++) f.dequantize(q, r * rb, ROW, out, r * ROW); });
  let sink = 0;
  const tdot = time(() => { for (let r = 0; r < rows; r++) sink += f.dot(q, r * rb, act, 0, ROW); });
  if (!Number.isFinite(sink)) throw new Error(`${t}: non-finite dot`);
  const gb = q.length / 1e9;
  let se = 0, ss = 0;
  for (let i = 0; i < n; i++) { se += (out[i]! - x[i]!) ** 2; ss += x[i]! ** 2; }
  console.log(`${t.padEnd(7)} ${(q.length / n).toFixed(4).padStart(9)} ${Math.sqrt(se / ss).toExponential(2).padStart(12)} ${(n / tq / 1e6).toFixed(1).padStart(16)} ${(gb / td).toFixed(3).padStart(16)} ${(n / td / 1e6).toFixed(0).padStart(7)} ${(gb / tdot).toFixed(3).padStart(10)} ${(n / tdot / 1e6).toFixed(0).padStart(7)}`);
}

// ---- xai8 (checkpoint int8 + bf16 scales), one matrix of ROW inputs × OUT outputs, G = 1 ----
{
  const OUT = Math.max(32, Math.floor(n / ROW));
  const q = new Int8Array(ROW * OUT);
  let s = 99;
  for (let i = 0; i < q.length; i++) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; q[i] = ((s >>> 16) % 255) - 127; }
  const scales = new Uint16Array(OUT);
  for (let j = 0; j < OUT; j++) scales[j] = 0x3c00 + (j % 64) * 2; // bf16 around 2^-7 … f16-exact
  const m: Xai8Matrix = { layout: 'xai8', nIn: ROW, nOut: OUT, groups: 1, q, scales: scales.map((v) => v - 0x3c00 + 0x3c00) };
  const rows = new Float32Array(ROW * OUT);
  const tr = time(() => xai8Rows(m, 0, OUT, rows));
  const dst = new Uint8Array(OUT * rowBytes(blockFormat('q8_0'), ROW));
  let kept = 0;
  const tq = time(() => { kept = xai8RowsToQ8_0(m, 0, OUT, dst, 0, rows); });
  const back = new Float32Array(ROW * OUT);
  blockFormat('q8_0').dequantize(dst, 0, back.length, back, 0);
  for (let i = 0; i < back.length; i++) if (back[i] !== rows[i]) throw new Error(`xai8 → q8_0 not exact at ${i}`);
  if (kept !== (ROW * OUT) / 32) throw new Error(`xai8 → q8_0 kept ${kept} of ${(ROW * OUT) / 32} blocks`);
  let sink = 0;
  const td = time(() => { for (let j = 0; j < OUT; j++) sink += xai8Dot(m, j, act, 0); });
  if (!Number.isFinite(sink)) throw new Error('xai8 dot not finite');
  const vals = ROW * OUT;
  console.log(`xai8 [${ROW}×${OUT}]: rows (transpose+scale) ${(vals / tr / 1e6).toFixed(0)} Mval/s; → q8_0 exact ${(vals / tq / 1e6).toFixed(0)} Mval/s; column dot ${(vals / td / 1e6).toFixed(0)} Mval/s (${(vals / td / 1e9).toFixed(3)} GB/s int8)`);
}
