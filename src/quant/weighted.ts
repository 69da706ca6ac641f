/**
 * Quantisation with an importance matrix (`grok convert --imatrix`, llama-quantize --imatrix): llama.cpp's
 * quantize_<type>(…, quant_weights) for every type we write that uses the weights, giving the same bytes.
 * The K-quants are in kquant-weighted.ts, IQ3_S in iq3_s.ts; here the 32-value types and IQ4_XS, and the one
 * entry point.
 * `qw` holds a row's importance (llama-quantize's sums / calls, one value per input column); a block reads
 * the values at its own columns.
 *
 * ggml-quants.c, with quant_weights:
 *   - Q4_0 / Q5_0 (quantize_row_q4_0_impl / q5_0_impl): weights qw·√(σ² + x²), σ² = mean x² over the whole
 *     row; make_qx_quants (levels −8…7 / −16…15, 19 more candidate scales, weighted least squares);
 *   - Q4_1 / Q5_1 (q4_1_impl / q5_1_impl): the same weights; make_qkx3_quants (levels 0…15 / 0…31 with a
 *     minimum: the qkx2 search with rmin −0.9, rdelta 0.05, 37 steps, squared error), m = −(the minimum);
 *   - IQ4_NL / IQ4_XS (quantize_row_iq4_nl_impl): weights qw·√(σ² + x²), σ² = 2·mean x² over the block (32)
 *     or super-block (256), in place of x² in the same scale search (iq4_nl.ts iq4Scale).
 *   - IQ3_S (quantize_row_iq3_s_impl): weights qw·√(σ² + x²), σ² = 2·mean x² of the super-block, in place of
 *     x² in the same search (iq3_s.ts); IQ3_XXS (iq3_xxs.ts) and IQ2_S (iq2_s.ts) likewise;
 *   - IQ2_XXS, IQ2_XS (iq2_xxs.ts, iq2_xs.ts: σ² = mean x²) and IQ1_S (iq1-quant.ts: σ² = 2·mean x²) exist
 *     only with weights, as in llama.cpp, which asserts them; IQ1_M (iq1-quant.ts) likewise here (llama-quantize
 *     refuses it without an importance matrix).
 * Q4_0 … Q5_1 store the search's own levels (no re-levelling from the f16 scale); IQ4 re-picks them with the
 * unrounded scale, as without weights.
 * Every float operation is float32 (Math.fround), in llama.cpp's order; test/quant-llama.test.ts compares the
 * bytes with llama.cpp's on reference inputs and weights.
 */
import { checkBlocks, makeQkx2Quants, qkx2Min, wrF16 } from './ggml-ref.js';
import { blockFormat } from './index.js';
import { iq1mQuantizeBlock, iq1sQuantizeBlock } from './iq1-quant.js';
import { iq2sQuantizeBlock } from './iq2_s.js';
import { iq2xsQuantizeBlock } from './iq2_xs.js';
import { iq2xxsQuantizeBlock } from './iq2_xxs.js';
import { iq3sQuantizeBlock } from './iq3_s.js';
import { iq3xxsQuantizeBlock } from './iq3_xxs.js';
import { iq4NlPack, iq4Scale } from './iq4_nl.js';
import { iq4XsPack } from './iq4_xs.js';
import { importance, KQUANT_WEIGHTED_ROWS, makeQxQuantsWeighted, RMIN3, type WeightedRow } from './kquant-weighted.js';
import type { BlockType } from './types.js';

const f = Math.fround;
const QK = 32;

const scratch = { w: new Float32Array(QK), L: new Uint8Array(QK), Laux: new Uint8Array(QK), scales: new Float32Array(8) };

/** σ² of the 32-value types: Σ x² over the row (in order) / n. */
function rowSigma2(x: Float32Array, xo: number, n: number): number {
  let s = 0;
  for (let j = 0; j < n; j++) s = f(s + f(x[xo + j]! * x[xo + j]!));
  return f(s / n);
}

/** σ² of IQ4: 2·Σ x² / n over the (super-)block of n values, as llama.cpp writes it (sigma2 *= 2.f/n). */
function iq4Sigma2(x: Float32Array, xo: number, n: number): number {
  let s = 0;
  for (let j = 0; j < n; j++) s = f(s + f(x[xo + j]! * x[xo + j]!));
  return f(s * f(2 / n));
}

/** The 5th bits of 32 levels as Q5_0 / Q5_1's little-endian qh (bit j: value j), written at dst[o]. */
function putQh(L: Uint8Array, dst: Uint8Array, o: number): void {
  for (let k = 0; k < 4; k++) {
    let b = 0;
    for (let j = 0; j < 8; j++) b |= ((L[8 * k + j]! >> 4) & 1) << j;
    dst[o + k] = b;
  }
}

/** Q4_0 (nmax 8, 18 bytes) or Q5_0 (nmax 16, 22 bytes): make_qx_quants per block; levels are l + nmax. */
function qx0Row(nmax: number): WeightedRow {
  const bytes = nmax === 8 ? 18 : 22;
  return (x, xo, n, dst, o, qw, qwo) => {
    const { w, L } = scratch;
    const sigma2 = rowSigma2(x, xo, n);
    for (let b = 0; b < n / QK; b++) {
      const xb = xo + QK * b;
      const ob = o + bytes * b;
      importance(QK, x, xb, qw, qwo + QK * b, sigma2, w);
      wrF16(dst, ob, makeQxQuantsWeighted(QK, nmax, x, xb, L, 0, w, 0));
      const qs = nmax === 8 ? ob + 2 : ob + 6;
      if (nmax === 16) putQh(L, dst, ob + 2);
      for (let j = 0; j < 16; j++) dst[qs + j] = (L[j]! & 15) | ((L[j + 16]! & 15) << 4);
    }
  };
}

/** Q4_1 (nmax 15, 20 bytes) or Q5_1 (nmax 31, 24 bytes): make_qkx3_quants per block; d, then m = the minimum. */
function qkx1Row(nmax: number): WeightedRow {
  const bytes = nmax === 15 ? 20 : 24;
  return (x, xo, n, dst, o, qw, qwo) => {
    const { w, L, Laux } = scratch;
    const sigma2 = rowSigma2(x, xo, n);
    for (let b = 0; b < n / QK; b++) {
      const xb = xo + QK * b;
      const ob = o + bytes * b;
      importance(QK, x, xb, qw, qwo + QK * b, sigma2, w);
      wrF16(dst, ob, makeQkx2Quants(QK, nmax, x, xb, w, L, 0, Laux, RMIN3, 0.05, 36, false)); // make_qkx3_quants
      wrF16(dst, ob + 2, -qkx2Min); // y.m = −the_min
      const qs = nmax === 15 ? ob + 4 : ob + 8;
      if (nmax === 31) putQh(L, dst, ob + 4);
      for (let j = 0; j < 16; j++) dst[qs + j] = (L[j]! & 15) | ((L[j + 16]! & 15) << 4);
    }
  };
}

const iq4nlRow: WeightedRow = (x, xo, n, dst, o, qw, qwo) => {
  const { w } = scratch;
  for (let b = 0; b < n / QK; b++) {
    const xb = xo + QK * b;
    importance(QK, x, xb, qw, qwo + QK * b, iq4Sigma2(x, xb, QK), w);
    iq4NlPack(x, xb, iq4Scale(x, xb, w), dst, o + 18 * b);
  }
};

const iq4xsRow: WeightedRow = (x, xo, n, dst, o, qw, qwo) => {
  const { w, scales } = scratch;
  for (let b = 0; b < n / 256; b++) {
    const xb = xo + 256 * b;
    const sigma2 = iq4Sigma2(x, xb, 256);
    for (let ib = 0; ib < 8; ib++) {
      importance(QK, x, xb + QK * ib, qw, qwo + 256 * b + QK * ib, sigma2, w);
      scales[ib] = iq4Scale(x, xb + QK * ib, w);
    }
    iq4XsPack(x, xb, scales, dst, o + 136 * b);
  }
};

const iq3sRow: WeightedRow = (x, xo, n, dst, o, qw, qwo) => {
  for (let b = 0; b < n / 256; b++) iq3sQuantizeBlock(x, xo + 256 * b, dst, o + 110 * b, qw, qwo + 256 * b);
};

/** A row of 256-value super-blocks of `bytes` bytes each, quantised by `block`. */
function superRow(bytes: number, block: (x: Float32Array, xo: number, dst: Uint8Array, o: number, qw: Float32Array, qwo: number) => void): WeightedRow {
  return (x, xo, n, dst, o, qw, qwo) => {
    for (let b = 0; b < n / 256; b++) block(x, xo + 256 * b, dst, o + bytes * b, qw, qwo + 256 * b);
  };
}

const ROWS: Partial<Record<BlockType, WeightedRow>> = {
  ...KQUANT_WEIGHTED_ROWS,
  q4_0: qx0Row(8), q5_0: qx0Row(16), q4_1: qkx1Row(15), q5_1: qkx1Row(31), iq4_nl: iq4nlRow, iq4_xs: iq4xsRow, iq3_s: iq3sRow,
  iq2_xxs: superRow(66, iq2xxsQuantizeBlock), iq2_xs: superRow(74, iq2xsQuantizeBlock),
  iq2_s: superRow(82, iq2sQuantizeBlock), iq3_xxs: superRow(98, iq3xxsQuantizeBlock),
  iq1_s: superRow(50, iq1sQuantizeBlock), iq1_m: superRow(56, iq1mQuantizeBlock),
};

/** The block types quantised with an importance matrix (the others ignore it, as in llama.cpp: Q8_0, floats). */
export const WEIGHTED_TYPES: ReadonlySet<BlockType> = new Set(Object.keys(ROWS) as BlockType[]);

/**
 * `rows` rows of nIn values (x from xo) into `type` blocks at dst[o], each row weighted by the same
 * importance values qw[0 … nIn) (llama.cpp's quantize_<type>(…, quant_weights)).
 */
export function quantizeRowsWeighted(type: BlockType, x: Float32Array, xo: number, nIn: number, rows: number, dst: Uint8Array, o: number, qw: Float32Array): void {
  const row = ROWS[type];
  if (!row) throw new Error(`importance-matrix quantisation: not implemented for ${type} (only ${[...WEIGHTED_TYPES].join(', ')})`);
  const fmt = blockFormat(type);
  checkBlocks(type, nIn, fmt.blockSize);
  if (qw.length < nIn) throw new Error(`importance-matrix quantisation: ${qw.length} weights for rows of ${nIn}`);
  const rb = (nIn / fmt.blockSize) * fmt.bytesPerBlock;
  for (let r = 0; r < rows; r++) row(x, xo + r * nIn, nIn, dst, o + r * rb, qw, 0);
}
