/**
 * Grok-1's architecture with a backward pass, for training small models in this project.
 * An independent implementation of what src/model/grok.ts computes (docs/grok-1-architecture.md):
 *   - h = E[tokens] · embeddingMultiplier (78.38 in Grok-1)
 *   - per layer, sandwich norms: h += N1(Attn(N0(h))); h += N3(MoE(N2(h)))
 *   - attention: GQA, rotate-half RoPE, logits · attnOutputMultiplier then c·tanh(x/c), causal, pad keys masked
 *   - MoE: softmax router, top-A experts, gates = the softmax probabilities (not renormalised),
 *     expert(x) = (gelu_tanh(x·Wgᵀ) ⊙ x·Wuᵀ)·Wdᵀ
 *   - logits = N_final(h) · Eᵀ · outputMultiplier (tied embedding)
 * Dimensions: B sequences of T tokens, N = B·T rows; D model width, H query heads, G KV heads, K head
 * width, E experts, A experts per token, F expert width, V vocabulary.
 * Parameters use the GGUF tensor names (formats.md §3.6) and GGUF/PyTorch [out, in] layout, so saving
 * is a plain copy.
 */
import type { GrokConfig } from '../model/config.js';
import {
  type Arr, rmsnormForward, rmsnormBackward, ropeTables, ropeApply, geluTanh, geluGradFromTanh,
  type AttnShape,
} from './ops.js';
import { matmulXWt, matmulDyW, matmulDyTX } from './gemm.js';
import { attentionForwardMM, attentionBackwardMM } from './attention.js';
import type { Rng } from './rng.js';

export type DType = 'f32' | 'f64';

export interface Param {
  name: string;
  /** Row-major shape, outermost first (e.g. [E, F, D] for ffn_gate_exps). */
  shape: number[];
  data: Arr;
}

function alloc(dtype: DType, n: number): Arr {
  return dtype === 'f32' ? new Float32Array(n) : new Float64Array(n);
}

/** The named parameters of a model, in a fixed order (the order of checkpoints and GGUF files). */
export class ParamSet {
  readonly list: Param[] = [];
  private byName = new Map<string, Param>();

  constructor(readonly config: GrokConfig, readonly dtype: DType) {
    const c = config;
    const add = (name: string, shape: number[]) => {
      const p: Param = { name, shape, data: alloc(dtype, shape.reduce((a, b) => a * b, 1)) };
      this.list.push(p);
      this.byName.set(name, p);
    };
    add('token_embd.weight', [c.vocabSize, c.dModel]);
    for (let l = 0; l < c.nLayers; l++) {
      const b = `blk.${l}.`;
      add(b + 'attn_norm.weight', [c.dModel]);
      add(b + 'attn_q.weight', [c.nHeads * c.headDim, c.dModel]);
      add(b + 'attn_k.weight', [c.nKVHeads * c.headDim, c.dModel]);
      add(b + 'attn_v.weight', [c.nKVHeads * c.headDim, c.dModel]);
      add(b + 'attn_output.weight', [c.dModel, c.nHeads * c.headDim]);
      add(b + 'attn_output_norm.weight', [c.dModel]);
      add(b + 'ffn_norm.weight', [c.dModel]);
      add(b + 'ffn_gate_inp.weight', [c.nExperts, c.dModel]);
      add(b + 'ffn_gate_exps.weight', [c.nExperts, c.ffnSize, c.dModel]);
      add(b + 'ffn_up_exps.weight', [c.nExperts, c.ffnSize, c.dModel]);
      add(b + 'ffn_down_exps.weight', [c.nExperts, c.dModel, c.ffnSize]);
      add(b + 'layer_output_norm.weight', [c.dModel]);
    }
    add('output_norm.weight', [c.dModel]);
  }

  get(name: string): Arr {
    const p = this.byName.get(name);
    if (!p) throw new Error(`ParamSet: no parameter named '${name}'`);
    return p.data;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  count(): number {
    return this.list.reduce((a, p) => a + p.data.length, 0);
  }

  /** Parameters one token uses: everything except the (E − A) unchosen experts of each layer. */
  activeCount(): number {
    const c = this.config;
    const perExpert = 3 * c.ffnSize * c.dModel;
    return this.count() - c.nLayers * (c.nExperts - c.nExpertsUsed) * perExpert;
  }

  zero(): void {
    for (const p of this.list) p.data.fill(0);
  }

  /**
   * Initialisation: norm scales 1; matrices N(0, 1/fanIn)·gain with the output projections of each block
   * scaled down by 1/sqrt(2·layers) (GPT-2 style); embedding std 1/embeddingMultiplier so the residual
   * stream starts at RMS ≈ 1 whatever the multiplier.
   */
  init(rng: Rng): void {
    const c = this.config;
    for (const p of this.list) {
      const d = p.data;
      if (p.shape.length === 1) {
        d.fill(1);
        continue;
      }
      let std: number;
      if (p.name === 'token_embd.weight') std = 1 / c.embeddingMultiplier;
      else {
        const fanIn = p.shape[p.shape.length - 1];
        std = 1 / Math.sqrt(fanIn);
        if (p.name.endsWith('attn_output.weight') || p.name.endsWith('ffn_down_exps.weight')) std /= Math.sqrt(2 * c.nLayers);
        if (p.name.endsWith('ffn_gate_inp.weight')) std *= 0.1; // near-uniform routing at the start
      }
      for (let i = 0; i < d.length; i++) d[i] = rng.normal() * std;
    }
  }
}

export interface StepOptions {
  /** Weight α of the Switch load-balancing loss α·E·Σ_e f_e·P̄_e per layer (0 = off). */
  auxCoef?: number;
  /** Loss only at positions with mask 1 (default: all). */
  lossMask?: ArrayLike<number>;
}

export interface StepResult {
  /** Mean cross-entropy (nats per token) over the counted positions. */
  loss: number;
  /** The auxiliary loss (already multiplied by auxCoef, summed over layers); gradients are of loss + auxLoss. */
  auxLoss: number;
  /** Tokens routed to each expert, [layer][expert] (each token counts once per chosen expert). */
  expertCounts: number[][];
}

interface LayerTape {
  hIn: Arr; rstd0: Arr; n0: Arr;
  q: Arr; k: Arr; v: Arr; p: Arr; th: Arr; ao: Arr;
  a: Arr; rstd1: Arr;
  h1: Arr; rstd2: Arr; n2: Arr;
  probs: Arr; sel: Int32Array;
  experts: { rows: Int32Array; x: Arr; g: Arr; gt: Arr; u: Arr; act: Arr; y: Arr }[];
  m: Arr; rstd3: Arr;
}

/**
 * The computation over one batch. `forward` returns logits (evaluation); `step` runs forward and backward,
 * accumulating gradients into `grads` (which the caller zeroes).
 */
export class GrokTrainer {
  private rope: { cos: Float64Array; sin: Float64Array };

  constructor(readonly params: ParamSet, maxPositions: number) {
    const c = params.config;
    if (c.nHeads % c.nKVHeads !== 0) throw new Error(`nHeads ${c.nHeads} is not a multiple of nKVHeads ${c.nKVHeads}`);
    if (c.headDim % 2 !== 0) throw new Error(`headDim ${c.headDim} must be even for RoPE`);
    this.rope = ropeTables(maxPositions, c.headDim, c.ropeBase);
  }

  /** Logits [B·T, V] for B sequences of T tokens (positions 0 … T−1 each). */
  forward(tokens: ArrayLike<number>, B: number, T: number): Arr {
    return this.run(tokens, B, T, null, undefined).logits;
  }

  /**
   * Logits, the number of tokens routed to each expert [layer][expert], and the chosen experts
   * [layer] → Int32Array [B·T·A] (in order of probability).
   */
  forwardWithRouting(tokens: ArrayLike<number>, B: number, T: number): { logits: Arr; expertCounts: number[][]; selected: Int32Array[] } {
    return this.run(tokens, B, T, null, undefined);
  }

  /** Forward and backward; gradients are added into grads. */
  step(tokens: ArrayLike<number>, targets: ArrayLike<number>, B: number, T: number, grads: ParamSet, opts: StepOptions = {}): StepResult {
    return this.run(tokens, B, T, grads, targets, opts).result!;
  }

  private run(tokens: ArrayLike<number>, B: number, T: number, grads: ParamSet | null, targets: ArrayLike<number> | undefined, opts: StepOptions = {}): { logits: Arr; expertCounts: number[][]; selected: Int32Array[]; result?: StepResult } {
    const P = this.params, c = P.config, dt = P.dtype;
    const N = B * T, D = c.dModel, H = c.nHeads, G = c.nKVHeads, K = c.headDim, E = c.nExperts, A = c.nExpertsUsed, F = c.ffnSize, V = c.vocabSize;
    const HK = H * K, GK = G * K;
    if (tokens.length !== N) throw new Error(`expected ${N} tokens (B=${B}, T=${T}), got ${tokens.length}`);
    if (T > this.rope.cos.length / (K / 2)) throw new Error(`sequence length ${T} exceeds the RoPE table (${this.rope.cos.length / (K / 2)})`);
    const pos = new Int32Array(N);
    for (let i = 0; i < N; i++) {
      pos[i] = i % T;
      const tok = tokens[i];
      if (!Number.isInteger(tok) || tok < 0 || tok >= V) throw new Error(`token ${tok} at ${i} is outside the vocabulary [0, ${V})`);
    }
    const attnShape: AttnShape = { B, T, H, G, K, mult: c.attnOutputMultiplier, cap: c.attnSoftcap };
    // Keys holding the pad token are masked (architecture doc, step 2).
    const keyMask = new Uint8Array(N);
    for (let i = 0; i < N; i++) keyMask[i] = tokens[i] === c.padToken ? 0 : 1;
    const emb = P.get('token_embd.weight');

    // Embedding lookup, scaled.
    let h = alloc(dt, N * D);
    for (let t = 0; t < N; t++) {
      const src = tokens[t] * D;
      for (let i = 0; i < D; i++) h[t * D + i] = emb[src + i] * c.embeddingMultiplier;
    }

    const tapes: LayerTape[] = [];
    const auxTerms: { f: Float64Array }[] = [];
    const expertCounts: number[][] = [];
    const selected: Int32Array[] = [];
    let auxLoss = 0;
    const auxCoef = opts.auxCoef ?? 0;

    for (let l = 0; l < c.nLayers; l++) {
      const b = `blk.${l}.`;
      const hIn = h;
      // Attention block: n0 = N0(h); q, k, v projections; RoPE.
      const rstd0 = alloc(dt, N), n0 = alloc(dt, N * D);
      rmsnormForward(n0, rstd0, hIn, P.get(b + 'attn_norm.weight'), N, D, c.rmsNormEps);
      const q = alloc(dt, N * HK), k = alloc(dt, N * GK), v = alloc(dt, N * GK);
      matmulXWt(q, n0, P.get(b + 'attn_q.weight'), N, D, HK);
      matmulXWt(k, n0, P.get(b + 'attn_k.weight'), N, D, GK);
      matmulXWt(v, n0, P.get(b + 'attn_v.weight'), N, D, GK);
      ropeApply(q, N, H, K, pos, this.rope.cos, this.rope.sin, 1);
      ropeApply(k, N, G, K, pos, this.rope.cos, this.rope.sin, 1);
      // Scores · multiplier, soft-capped, causal + pad-key mask, softmax, weighted sum of values.
      const p = alloc(dt, B * H * T * T), th = alloc(dt, B * H * T * T), ao = alloc(dt, N * HK);
      attentionForwardMM(ao, p, th, q, k, v, keyMask, attnShape);
      const a = alloc(dt, N * D);
      matmulXWt(a, ao, P.get(b + 'attn_output.weight'), N, HK, D);
      const rstd1 = alloc(dt, N), n1 = alloc(dt, N * D);
      rmsnormForward(n1, rstd1, a, P.get(b + 'attn_output_norm.weight'), N, D, c.rmsNormEps);
      const h1 = alloc(dt, N * D);
      for (let i = 0; i < N * D; i++) h1[i] = hIn[i] + n1[i];

      // MoE block: router softmax, top-A, un-renormalised gates.
      const rstd2 = alloc(dt, N), n2 = alloc(dt, N * D);
      rmsnormForward(n2, rstd2, h1, P.get(b + 'ffn_norm.weight'), N, D, c.rmsNormEps);
      const probs = alloc(dt, N * E);
      matmulXWt(probs, n2, P.get(b + 'ffn_gate_inp.weight'), N, D, E);
      const sel = new Int32Array(N * A);
      const rowsPer: number[][] = Array.from({ length: E }, () => []);
      for (let t = 0; t < N; t++) {
        const o = t * E;
        let mx = -Infinity;
        for (let e = 0; e < E; e++) if (probs[o + e] > mx) mx = probs[o + e];
        let sum = 0;
        for (let e = 0; e < E; e++) { probs[o + e] = Math.exp(probs[o + e] - mx); sum += probs[o + e]; }
        for (let e = 0; e < E; e++) probs[o + e] /= sum;
        // Top-A by probability; ties go to the lower expert index.
        for (let j = 0; j < A; j++) {
          let best = -1;
          for (let e = 0; e < E; e++) {
            let taken = false;
            for (let jj = 0; jj < j; jj++) if (sel[t * A + jj] === e) taken = true;
            if (taken) continue;
            if (best < 0 || probs[o + e] > probs[o + best]) best = e;
          }
          sel[t * A + j] = best;
          rowsPer[best].push(t);
        }
      }
      const m = alloc(dt, N * D);
      const gateW = P.get(b + 'ffn_gate_exps.weight'), upW = P.get(b + 'ffn_up_exps.weight'), downW = P.get(b + 'ffn_down_exps.weight');
      const experts: LayerTape['experts'] = [];
      for (let e = 0; e < E; e++) {
        const rows = Int32Array.from(rowsPer[e]);
        const ne = rows.length;
        const x = alloc(dt, ne * D), g = alloc(dt, ne * F), gt = alloc(dt, ne * F), u = alloc(dt, ne * F), act = alloc(dt, ne * F), y = alloc(dt, ne * D);
        if (ne > 0) {
          for (let j = 0; j < ne; j++) x.set(n2.subarray(rows[j] * D, rows[j] * D + D), j * D);
          matmulXWt(g, x, gateW.subarray(e * F * D, (e + 1) * F * D), ne, D, F);
          matmulXWt(u, x, upW.subarray(e * F * D, (e + 1) * F * D), ne, D, F);
          for (let i = 0; i < ne * F; i++) {
            const tv = geluTanh(g[i]);
            gt[i] = tv;
            act[i] = 0.5 * g[i] * (1 + tv) * u[i];
          }
          matmulXWt(y, act, downW.subarray(e * D * F, (e + 1) * D * F), ne, F, D);
          for (let j = 0; j < ne; j++) {
            const t = rows[j], gate = probs[t * E + e];
            for (let i = 0; i < D; i++) m[t * D + i] += gate * y[j * D + i];
          }
        }
        experts.push({ rows, x, g, gt, u, act, y });
      }
      expertCounts.push(rowsPer.map((r) => r.length));
      selected.push(sel);
      if (auxCoef > 0) {
        // Switch Transformer load balance: E · Σ_e f_e · P̄_e, f_e = share of the N·A assignments.
        const f = new Float64Array(E);
        let s = 0;
        for (let e = 0; e < E; e++) {
          f[e] = rowsPer[e].length / (N * A);
          let pm = 0;
          for (let t = 0; t < N; t++) pm += probs[t * E + e];
          s += f[e] * (pm / N);
        }
        auxLoss += auxCoef * E * s;
        auxTerms.push({ f });
      }
      const rstd3 = alloc(dt, N), n3 = alloc(dt, N * D);
      rmsnormForward(n3, rstd3, m, P.get(b + 'layer_output_norm.weight'), N, D, c.rmsNormEps);
      const h2 = alloc(dt, N * D);
      for (let i = 0; i < N * D; i++) h2[i] = h1[i] + n3[i];
      h = h2;
      if (grads) tapes.push({ hIn, rstd0, n0, q, k, v, p, th, ao, a, rstd1, h1, rstd2, n2, probs, sel, experts, m, rstd3 });
    }

    // Final norm and tied output projection.
    const rstdF = alloc(dt, N), nf = alloc(dt, N * D);
    rmsnormForward(nf, rstdF, h, P.get('output_norm.weight'), N, D, c.rmsNormEps);
    const logits = alloc(dt, N * V);
    matmulXWt(logits, nf, emb, N, D, V);
    for (let i = 0; i < N * V; i++) logits[i] *= c.outputMultiplier;
    if (!grads || !targets) return { logits, expertCounts, selected };

    // Cross-entropy; dlogits overwrite logits (softmax − onehot) / count.
    if (targets.length !== N) throw new Error(`expected ${N} targets, got ${targets.length}`);
    let count = 0;
    for (let t = 0; t < N; t++) if (!opts.lossMask || opts.lossMask[t]) count++;
    let loss = 0;
    const dlog = logits;
    for (let t = 0; t < N; t++) {
      const o = t * V;
      if (opts.lossMask && !opts.lossMask[t]) { dlog.fill(0, o, o + V); continue; }
      const y = targets[t];
      if (!Number.isInteger(y) || y < 0 || y >= V) throw new Error(`target ${y} at ${t} is outside the vocabulary [0, ${V})`);
      let mx = -Infinity;
      for (let i = 0; i < V; i++) if (logits[o + i] > mx) mx = logits[o + i];
      const ly = logits[o + y];
      let sum = 0;
      for (let i = 0; i < V; i++) {
        const e = Math.exp(logits[o + i] - mx);
        dlog[o + i] = e;
        sum += e;
      }
      loss += Math.log(sum) + mx - ly;
      const scale = 1 / (sum * count);
      for (let i = 0; i < V; i++) dlog[o + i] *= scale;
      dlog[o + y] -= 1 / count;
    }
    loss /= count;

    // Backward. Output projection (tied): dlogits' = dlogits·outMult.
    for (let i = 0; i < N * V; i++) dlog[i] *= c.outputMultiplier;
    const gEmb = grads.get('token_embd.weight');
    const dnf = alloc(dt, N * D);
    matmulDyW(dnf, dlog, emb, N, D, V);
    matmulDyTX(gEmb, dlog, nf, N, D, V);
    let dh = alloc(dt, N * D);
    rmsnormBackward(dh, grads.get('output_norm.weight'), dnf, h, P.get('output_norm.weight'), rstdF, N, D);

    for (let l = c.nLayers - 1; l >= 0; l--) {
      const b = `blk.${l}.`;
      const tp = tapes[l];
      // h2 = h1 + N3(m): dh flows to h1 unchanged and through N3 into m.
      const dm = alloc(dt, N * D);
      rmsnormBackward(dm, grads.get(b + 'layer_output_norm.weight'), dh, tp.m, P.get(b + 'layer_output_norm.weight'), tp.rstd3, N, D);
      const dh1 = dh; // accumulate into the same buffer: dh1 = dh + (through the MoE and N2)
      const dn2 = alloc(dt, N * D);
      const dprobs = alloc(dt, N * E);
      const gateW = P.get(b + 'ffn_gate_exps.weight'), upW = P.get(b + 'ffn_up_exps.weight'), downW = P.get(b + 'ffn_down_exps.weight');
      const gGate = grads.get(b + 'ffn_gate_exps.weight'), gUp = grads.get(b + 'ffn_up_exps.weight'), gDown = grads.get(b + 'ffn_down_exps.weight');
      for (let e = 0; e < E; e++) {
        const ex = tp.experts[e];
        const ne = ex.rows.length;
        if (ne === 0) continue;
        const dy = alloc(dt, ne * D);
        for (let j = 0; j < ne; j++) {
          const t = ex.rows[j], gate = tp.probs[t * E + e];
          let dg = 0;
          for (let i = 0; i < D; i++) {
            dy[j * D + i] = gate * dm[t * D + i];
            dg += dm[t * D + i] * ex.y[j * D + i];
          }
          dprobs[t * E + e] += dg;
        }
        const wd = downW.subarray(e * D * F, (e + 1) * D * F);
        const dact = alloc(dt, ne * F);
        matmulDyW(dact, dy, wd, ne, F, D);
        matmulDyTX(gDown.subarray(e * D * F, (e + 1) * D * F), dy, ex.act, ne, F, D);
        const dgt = alloc(dt, ne * F), dup = alloc(dt, ne * F);
        for (let i = 0; i < ne * F; i++) {
          dgt[i] = dact[i] * ex.u[i] * geluGradFromTanh(ex.g[i], ex.gt[i]);
          dup[i] = dact[i] * 0.5 * ex.g[i] * (1 + ex.gt[i]);
        }
        const wg = gateW.subarray(e * F * D, (e + 1) * F * D), wu = upW.subarray(e * F * D, (e + 1) * F * D);
        matmulDyTX(gGate.subarray(e * F * D, (e + 1) * F * D), dgt, ex.x, ne, D, F);
        matmulDyTX(gUp.subarray(e * F * D, (e + 1) * F * D), dup, ex.x, ne, D, F);
        const dx = alloc(dt, ne * D);
        matmulDyW(dx, dgt, wg, ne, D, F);
        matmulDyW(dx, dup, wu, ne, D, F);
        for (let j = 0; j < ne; j++) {
          const t = ex.rows[j];
          for (let i = 0; i < D; i++) dn2[t * D + i] += dx[j * D + i];
        }
      }
      if (auxCoef > 0) {
        const f = auxTerms[l].f;
        for (let t = 0; t < N; t++) for (let e = 0; e < E; e++) dprobs[t * E + e] += (auxCoef * E * f[e]) / N;
      }
      // Softmax backward to router logits: dr = P ⊙ (dP − Σ P·dP).
      const dr = alloc(dt, N * E);
      for (let t = 0; t < N; t++) {
        let s = 0;
        for (let e = 0; e < E; e++) s += tp.probs[t * E + e] * dprobs[t * E + e];
        for (let e = 0; e < E; e++) dr[t * E + e] = tp.probs[t * E + e] * (dprobs[t * E + e] - s);
      }
      matmulDyTX(grads.get(b + 'ffn_gate_inp.weight'), dr, tp.n2, N, D, E);
      matmulDyW(dn2, dr, P.get(b + 'ffn_gate_inp.weight'), N, D, E);
      rmsnormBackward(dh1, grads.get(b + 'ffn_norm.weight'), dn2, tp.h1, P.get(b + 'ffn_norm.weight'), tp.rstd2, N, D);

      // h1 = hIn + N1(a): through N1 and the output projection.
      const da = alloc(dt, N * D);
      rmsnormBackward(da, grads.get(b + 'attn_output_norm.weight'), dh1, tp.a, P.get(b + 'attn_output_norm.weight'), tp.rstd1, N, D);
      const dao = alloc(dt, N * HK);
      matmulDyW(dao, da, P.get(b + 'attn_output.weight'), N, HK, D);
      matmulDyTX(grads.get(b + 'attn_output.weight'), da, tp.ao, N, HK, D);
      const dq = alloc(dt, N * HK), dk = alloc(dt, N * GK), dv = alloc(dt, N * GK);
      attentionBackwardMM(dq, dk, dv, dao, tp.p, tp.th, tp.q, tp.k, tp.v, attnShape);
      ropeApply(dq, N, H, K, pos, this.rope.cos, this.rope.sin, -1);
      ropeApply(dk, N, G, K, pos, this.rope.cos, this.rope.sin, -1);
      const dn0 = alloc(dt, N * D);
      matmulDyW(dn0, dq, P.get(b + 'attn_q.weight'), N, D, HK);
      matmulDyW(dn0, dk, P.get(b + 'attn_k.weight'), N, D, GK);
      matmulDyW(dn0, dv, P.get(b + 'attn_v.weight'), N, D, GK);
      matmulDyTX(grads.get(b + 'attn_q.weight'), dq, tp.n0, N, D, HK);
      matmulDyTX(grads.get(b + 'attn_k.weight'), dk, tp.n0, N, D, GK);
      matmulDyTX(grads.get(b + 'attn_v.weight'), dv, tp.n0, N, D, GK);
      rmsnormBackward(dh1, grads.get(b + 'attn_norm.weight'), dn0, tp.hIn, P.get(b + 'attn_norm.weight'), tp.rstd0, N, D);
      dh = dh1;
    }
    // Embedding lookup.
    for (let t = 0; t < N; t++) {
      const dst = tokens[t] * D;
      for (let i = 0; i < D; i++) gEmb[dst + i] += c.embeddingMultiplier * dh[t * D + i];
    }
    return { logits, expertCounts, selected, result: { loss, auxLoss, expertCounts } };
  }
}
