// Causal grouped-query attention (contract: src/kernels/types.ts) in f32.
import {
  ATTN_HEAD_DIM, ATTN_K, ATTN_MASK, ATTN_N_HEADS, ATTN_N_KV, ATTN_OUT, ATTN_POS0, ATTN_Q, ATTN_SCALE, ATTN_SOFTCAP, ATTN_TEMP_LEN, ATTN_V,
} from '../src/kernels/abi';
import { hsum } from './math';

// Argument block ATTN_* (src/kernels/abi.ts). Items i = t·nKV + g in [i0, i1).

@inline function dotN(a: usize, b: usize, n: i32): f32 {
  let s0 = f32x4.splat(0);
  let s1 = f32x4.splat(0);
  let d = 0;
  for (; d + 8 <= n; d += 8) {
    const o = <usize>d << 2;
    s0 = f32x4.add(s0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
    s1 = f32x4.add(s1, f32x4.mul(v128.load(a + o, 16), v128.load(b + o, 16)));
  }
  let s = hsum(f32x4.add(s0, s1));
  for (; d < n; d++) s += load<f32>(a + (<usize>d << 2)) * load<f32>(b + (<usize>d << 2));
  return s;
}

/**
 * Causal GQA attention (contract: src/kernels/types.ts) for items i = t·nKV + g: token t with the query
 * heads of KV head g together, so each key and value vector is read once for all of them. Scores
 * q·k·scale, softcap·tanh(s/softcap), × τ (Grok-2's temperature), masked keys −1e30, softmax, Σ w·v; f32
 * throughout. `scratch` holds the heads' scores (perKV × nKeys f32).
 */
export function attnChunk(args: usize, i0: i32, i1: i32, scratch: usize): void {
  const q = <usize>load<u32>(args, ATTN_Q);
  const k = <usize>load<u32>(args, ATTN_K);
  const v = <usize>load<u32>(args, ATTN_V);
  const mask = <usize>load<u32>(args, ATTN_MASK);
  const out = <usize>load<u32>(args, ATTN_OUT);
  const pos0 = load<i32>(args, ATTN_POS0);
  const nHeads = load<i32>(args, ATTN_N_HEADS);
  const nKV = load<i32>(args, ATTN_N_KV);
  const K = load<i32>(args, ATTN_HEAD_DIM);
  const scale = load<f32>(args, ATTN_SCALE);
  const softcap = load<f32>(args, ATTN_SOFTCAP);
  const tempLen = <f64>load<f32>(args, ATTN_TEMP_LEN);
  const perKV = nHeads / nKV;
  const kvStride = <usize>(nKV * K) << 2;
  const Kb = <usize>K << 2;
  const K4 = K & ~3;
  for (let i = i0; i < i1; i++) {
    const t = i / nKV;
    const g = i - t * nKV;
    const nKeys = pos0 + t + 1;
    // τ = log2(p)/log2(L) for the query at position p > L (SGLang decode_attention.py xai_temperature_reg),
    // in f64 from the absolute position: the same factor whatever batch the query is in.
    const p = <f64>(pos0 + t);
    const tau: f32 = tempLen > 0 && p > tempLen ? <f32>(Math.log2(p) / Math.log2(tempLen)) : 1;
    const sRow = <usize>nKeys << 2; // one head's scores
    const q0 = q + (<usize>(t * nHeads + g * perKV) * Kb);
    const o0 = out + (<usize>(t * nHeads + g * perKV) * Kb);
    for (let p = 0; p < nKeys; p++) {
      const kp = k + <usize>p * kvStride + <usize>g * Kb;
      const masked = load<u8>(mask + p) == 0;
      for (let j = 0; j < perKV; j++) {
        let s: f32 = -1e30;
        if (!masked) {
          s = dotN(q0 + <usize>j * Kb, kp, K) * scale;
          if (softcap > 0) s = softcap * Mathf.tanh(s / softcap);
          s *= tau;
        }
        store<f32>(scratch + <usize>j * sRow + (<usize>p << 2), s);
      }
    }
    for (let j = 0; j < perKV; j++) {
      const sc = scratch + <usize>j * sRow;
      let mx: f32 = -Infinity;
      for (let p = 0; p < nKeys; p++) mx = max(mx, load<f32>(sc + (<usize>p << 2)));
      let sum: f32 = 0;
      for (let p = 0; p < nKeys; p++) {
        const e = Mathf.exp(load<f32>(sc + (<usize>p << 2)) - mx);
        store<f32>(sc + (<usize>p << 2), e);
        sum += e;
      }
      // Normalise the weights now, so the V pass is a plain weighted sum.
      const inv: f32 = <f32>1 / sum;
      for (let p = 0; p < nKeys; p++) store<f32>(sc + (<usize>p << 2), load<f32>(sc + (<usize>p << 2)) * inv);
      memory.fill(o0 + <usize>j * Kb, 0, Kb);
    }
    for (let p = 0; p < nKeys; p++) {
      const vo = v + <usize>p * kvStride + <usize>g * Kb;
      for (let j = 0; j < perKV; j++) {
        const wgt = load<f32>(scratch + <usize>j * sRow + (<usize>p << 2));
        if (wgt == 0) continue;
        const wv = f32x4.splat(wgt);
        const oo = o0 + <usize>j * Kb;
        let d = 0;
        for (; d < K4; d += 4) {
          const o = <usize>d << 2;
          v128.store(oo + o, f32x4.add(v128.load(oo + o), f32x4.mul(wv, v128.load(vo + o))));
        }
        for (; d < K; d++) store<f32>(oo + (<usize>d << 2), load<f32>(oo + (<usize>d << 2)) + wgt * load<f32>(vo + (<usize>d << 2)));
      }
    }
  }
}
