/**
 * Grok-1's architecture with a backward pass, for training small models in this project.
 * An independent implementation of what src/model/grok.ts computes (the reference: xai-org/grok-1 model.py):
 *   - h = E[tokens] · embeddingMultiplier (78.38 in Grok-1)
 *   - per layer, sandwich norms: h += N1(Attn(N0(h))); h += N3(MoE(N2(h)))
 *   - attention: GQA, rotate-half RoPE, logits · attnOutputMultiplier then c·tanh(x/c), causal, pad keys masked
 *   - MoE: softmax router, top-A experts, gates = the softmax probabilities (not renormalised),
 *     expert(x) = (gelu_tanh(x·Wgᵀ) ⊙ x·Wuᵀ)·Wdᵀ
 *   - logits = N_final(h) · Eᵀ · outputMultiplier (tied embedding)
 * Dimensions: B sequences of T tokens, N = B·T rows; D model width, H query heads, G KV heads, K head
 * width, E experts, A experts per token, F expert width, V vocabulary.
 * Each block's forward and backward live side by side in blocks.ts; GrokTrainer composes them.
 * Parameters use the GGUF tensor names (ggml docs/gguf.md, "Standardized tensor names") and the
 * GGUF/PyTorch [out, in] layout, so saving is a plain copy.
 */
import { layerTensors, MODEL_TENSORS, tensorDef, type TensorDef } from '../model/tensors.js';
import type { GrokConfig } from '../model/config.js';
import { type Arr, type DType, alloc, ropeTables } from './ops.js';
import {
  type AttnContext, type AttnTape, type AttnWeights, type Dims, type ExpertTape, type ExpertWeights, type NormTape, type OutputTape,
  type RouterTape,
  attention, crossEntropy, embedding, experts, output, rmsNorm, router,
} from './blocks.js';
import type { Rng } from '../base/rng.js';

export type { DType } from './ops.js';

export interface Param {
  name: string;
  /** Row-major shape, outermost first (e.g. [E, F, D] for ffn_gate_exps). */
  shape: number[];
  data: Arr;
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
    // GGUF names and [out, in] shapes from the tensor table; the order (embedding, layers, final norm) is
    // the order parameters are initialised and checkpointed in.
    const shape = (t: TensorDef): number[] => {
      const { nIn, nOut } = t.dims(c);
      return t.kind === 'vector' ? [nIn] : t.scope === 'expert' ? [c.nExperts, nOut, nIn] : [nOut, nIn];
    };
    const embd = tensorDef('token_embd');
    add(`${embd.gguf[0]}.weight`, shape(embd));
    for (let l = 0; l < c.nLayers; l++) for (const t of layerTensors(c)) add(`blk.${l}.${t.gguf[0]}.weight`, shape(t));
    for (const t of MODEL_TENSORS) if (t !== embd && !t.optional) add(`${t.gguf[0]}.weight`, shape(t));
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

/** One layer's weights — or their gradients — by role. */
interface LayerWeights {
  attnNorm: Arr; attn: AttnWeights; attnOutNorm: Arr;
  ffnNorm: Arr; router: Arr; experts: ExpertWeights; outNorm: Arr;
}

function layerWeights(ps: ParamSet, l: number): LayerWeights {
  const b = `blk.${l}.`;
  return {
    attnNorm: ps.get(b + 'attn_norm.weight'),
    attn: { q: ps.get(b + 'attn_q.weight'), k: ps.get(b + 'attn_k.weight'), v: ps.get(b + 'attn_v.weight'), o: ps.get(b + 'attn_output.weight') },
    attnOutNorm: ps.get(b + 'attn_output_norm.weight'),
    ffnNorm: ps.get(b + 'ffn_norm.weight'),
    router: ps.get(b + 'ffn_gate_inp.weight'),
    experts: { gate: ps.get(b + 'ffn_gate_exps.weight'), up: ps.get(b + 'ffn_up_exps.weight'), down: ps.get(b + 'ffn_down_exps.weight') },
    outNorm: ps.get(b + 'layer_output_norm.weight'),
  };
}

interface LayerTape {
  n0: NormTape; attn: AttnTape; n1: NormTape;
  n2: NormTape; router: RouterTape; experts: ExpertTape[]; n3: NormTape;
}

/** A decoder layer: the blocks joined by the sandwich norms and the two residual adds. */
const layer = {
  forward(d: Dims, h: Arr, w: LayerWeights, c: AttnContext, eps: number, auxCoef: number): { y: Arr; tape: LayerTape } {
    const ND = d.N * d.D;
    // h1 = h + N1(Attn(N0(h)))
    const n0 = rmsNorm.forward(d, h, w.attnNorm, eps);
    const at = attention.forward(d, n0.y, w.attn, c);
    const n1 = rmsNorm.forward(d, at.y, w.attnOutNorm, eps);
    const h1 = alloc(d.dt, ND);
    for (let i = 0; i < ND; i++) h1[i] = h[i] + n1.y[i];
    // h2 = h1 + N3(MoE(N2(h1))): router and experts both read N2's output.
    const n2 = rmsNorm.forward(d, h1, w.ffnNorm, eps);
    const rt = router.forward(d, n2.y, w.router, auxCoef);
    const ex = experts.forward(d, n2.y, rt, w.experts);
    const n3 = rmsNorm.forward(d, ex.y, w.outNorm, eps);
    const h2 = alloc(d.dt, ND);
    for (let i = 0; i < ND; i++) h2[i] = h1[i] + n3.y[i];
    return { y: h2, tape: { n0: n0.tape, attn: at.tape, n1: n1.tape, n2: n2.tape, router: rt, experts: ex.tape, n3: n3.tape } };
  },

  /** dh (the gradient of the layer's output) becomes, in place, that of its input; returned. */
  backward(d: Dims, dh: Arr, t: LayerTape, w: LayerWeights, g: LayerWeights, c: AttnContext, auxCoef: number): Arr {
    const ND = d.N * d.D;
    // h2 = h1 + N3(m): dh flows to h1 unchanged and through N3 into m.
    const dm = alloc(d.dt, ND);
    rmsNorm.backward(d, dh, t.n3, w.outNorm, dm, g.outNorm);
    const dh1 = dh; // accumulate into the same buffer: dh1 = dh + (through the MoE and N2)
    const dn2 = alloc(d.dt, ND);
    const dprobs = experts.backward(d, dm, t.experts, t.router, w.experts, dn2, g.experts);
    router.backward(d, dprobs, t.router, w.router, auxCoef, dn2, g.router);
    rmsNorm.backward(d, dn2, t.n2, w.ffnNorm, dh1, g.ffnNorm);
    // h1 = h + N1(a): through N1, the attention and N0.
    const da = alloc(d.dt, ND);
    rmsNorm.backward(d, dh1, t.n1, w.attnOutNorm, da, g.attnOutNorm);
    const dn0 = attention.backward(d, da, t.attn, w.attn, c, g.attn);
    rmsNorm.backward(d, dn0, t.n0, w.attnNorm, dh1, g.attnNorm);
    return dh1;
  },
};

interface ForwardPass {
  d: Dims;
  ctx: AttnContext;
  logits: Arr;
  out: OutputTape;
  /** Per layer, kept only for a backward pass. */
  tapes: LayerTape[];
  expertCounts: number[][];
  selected: Int32Array[];
  auxLoss: number;
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
    return this.forwardPass(tokens, B, T, false, 0).logits;
  }

  /**
   * Logits, the number of tokens routed to each expert [layer][expert], and the chosen experts
   * [layer] → Int32Array [B·T·A] (in order of probability).
   */
  forwardWithRouting(tokens: ArrayLike<number>, B: number, T: number): { logits: Arr; expertCounts: number[][]; selected: Int32Array[] } {
    const { logits, expertCounts, selected } = this.forwardPass(tokens, B, T, false, 0);
    return { logits, expertCounts, selected };
  }

  /** Forward and backward; gradients are added into grads. */
  step(tokens: ArrayLike<number>, targets: ArrayLike<number>, B: number, T: number, grads: ParamSet, opts: StepOptions = {}): StepResult {
    const P = this.params, c = P.config;
    const auxCoef = opts.auxCoef ?? 0;
    const f = this.forwardPass(tokens, B, T, true, auxCoef);
    const loss = crossEntropy(f.d, f.logits, targets, opts.lossMask); // f.logits now holds ∂loss/∂logits
    const emb = P.get('token_embd.weight'), gEmb = grads.get('token_embd.weight');
    let dh = output.backward(f.d, f.logits, f.out, P.get('output_norm.weight'), emb, c.outputMultiplier, grads.get('output_norm.weight'), gEmb);
    for (let l = c.nLayers - 1; l >= 0; l--) dh = layer.backward(f.d, dh, f.tapes[l], layerWeights(P, l), layerWeights(grads, l), f.ctx, auxCoef);
    embedding.backward(f.d, dh, tokens, c.embeddingMultiplier, gEmb);
    return { loss, auxLoss: f.auxLoss, expertCounts: f.expertCounts };
  }

  private forwardPass(tokens: ArrayLike<number>, B: number, T: number, keepTapes: boolean, auxCoef: number): ForwardPass {
    const P = this.params, c = P.config;
    const d: Dims = {
      dt: P.dtype, B, T, N: B * T, D: c.dModel, H: c.nHeads, G: c.nKVHeads, K: c.headDim,
      E: c.nExperts, A: c.nExpertsUsed, F: c.ffnSize, V: c.vocabSize,
    };
    const { N, K, V } = d;
    if (tokens.length !== N) throw new Error(`expected ${N} tokens (B=${B}, T=${T}), got ${tokens.length}`);
    if (T > this.rope.cos.length / (K / 2)) throw new Error(`sequence length ${T} exceeds the RoPE table (${this.rope.cos.length / (K / 2)})`);
    const pos = new Int32Array(N);
    for (let i = 0; i < N; i++) {
      pos[i] = i % T;
      const tok = tokens[i];
      if (!Number.isInteger(tok) || tok < 0 || tok >= V) throw new Error(`token ${tok} at ${i} is outside the vocabulary [0, ${V})`);
    }
    // Keys holding the pad token are masked (grok-1 model.py:1225 input_mask, :1343 mask · causal_mask).
    const keyMask = new Uint8Array(N);
    for (let i = 0; i < N; i++) keyMask[i] = tokens[i] === c.padToken ? 0 : 1;
    const ctx: AttnContext = {
      shape: { B, T, H: d.H, G: d.G, K, mult: c.attnOutputMultiplier, cap: c.attnSoftcap }, pos, keyMask, rope: this.rope,
    };
    const emb = P.get('token_embd.weight');

    let h = embedding.forward(d, emb, tokens, c.embeddingMultiplier);
    const tapes: LayerTape[] = [];
    const expertCounts: number[][] = [];
    const selected: Int32Array[] = [];
    let auxLoss = 0;
    for (let l = 0; l < c.nLayers; l++) {
      const { y, tape } = layer.forward(d, h, layerWeights(P, l), ctx, c.rmsNormEps, auxCoef);
      expertCounts.push(tape.router.rows.map((r) => r.length));
      selected.push(tape.router.sel);
      auxLoss += tape.router.aux;
      if (keepTapes) tapes.push(tape);
      h = y;
    }
    const out = output.forward(d, h, P.get('output_norm.weight'), emb, c.rmsNormEps, c.outputMultiplier);
    return { d, ctx, logits: out.y, out: out.tape, tapes, expertCounts, selected, auxLoss };
  }
}
