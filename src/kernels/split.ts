/**
 * y = x·W for a matrix kept in tensor-parallel shards (SplitMatrix, src/quant/matrix.ts), through the
 * kernels' per-matrix calls: the shards are used where they lie (mapped files, expert slots), never joined.
 * axis 'out': the parts' outputs side by side (one call for all parts, x quantised once);
 * axis 'in': each part applied to its run of x's columns, the products summed in rank order.
 */
import type { SplitMatrix } from '../quant/matrix.js';
import type { Kernels } from './types.js';

export function matmulSplit(kn: Kernels, w: SplitMatrix, x: Float32Array, T: number, y: Float32Array, exact = false): void {
  if (x.length < T * w.nIn || y.length < T * w.nOut) throw new Error(`matmulSplit: x has ${x.length} values (needs ${T}×${w.nIn}), y ${y.length} (needs ${T}×${w.nOut})`);
  const mm = (m: SplitMatrix['parts'][number], xs: Float32Array, ys: Float32Array) => (exact ? kn.matmulExact(m, xs, T, ys) : kn.matmul(m, xs, T, ys));
  if (w.axis === 'out') {
    // T = 1: each part writes straight into its run of y.
    const outs = w.parts.map((p, r) => (T === 1 ? y.subarray(offset(w, r), offset(w, r) + p.nOut) : new Float32Array(T * p.nOut)));
    if (exact) w.parts.forEach((p, r) => mm(p, x, outs[r]!));
    else kn.matmulMany(w.parts, x, T, outs);
    if (T === 1) return;
    w.parts.forEach((p, r) => {
      const o = offset(w, r), src = outs[r]!;
      for (let t = 0; t < T; t++) y.set(src.subarray(t * p.nOut, (t + 1) * p.nOut), t * w.nOut + o);
    });
    return;
  }
  const nOut = w.nOut;
  const part = new Float32Array(T * nOut);
  let c0 = 0;
  w.parts.forEach((p, r) => {
    let xs: Float32Array;
    if (T === 1) xs = x.subarray(c0, c0 + p.nIn);
    else {
      xs = new Float32Array(T * p.nIn);
      for (let t = 0; t < T; t++) xs.set(x.subarray(t * w.nIn + c0, t * w.nIn + c0 + p.nIn), t * p.nIn);
    }
    c0 += p.nIn;
    mm(p, xs, r === 0 ? y : part);
    if (r > 0) for (let i = 0; i < T * nOut; i++) y[i] += part[i]!;
  });
}

/** First output row of part r (axis 'out'). */
function offset(w: SplitMatrix, r: number): number {
  let o = 0;
  for (let i = 0; i < r; i++) o += w.parts[i]!.nOut;
  return o;
}
