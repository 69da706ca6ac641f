/**
 * The Grok forward pass over the kernel interface: Grok-1 (xai-org/grok-1 model.py) and Grok-2
 * (xai-org/grok-2 as SGLang runs it), one graph whose differences are named config fields.
 *
 * How Grok-1 differs from a plain GPT:
 * - token embedding ×78.38 (embedding_multiplier_scale); output logits = h·Eᵀ ×0.5774 (tied embedding);
 * - four RMSNorms per layer ("sandwich"): before and after attention, before and after the MoE, each
 *   post-norm applied to the block's output before the residual add; scale used as is (not 1 + scale);
 * - grouped-query attention with rotate-half RoPE; logits ×1/√128 then soft-capped 30·tanh(x/30);
 *   keys whose token is the pad id are masked out;
 * - 8-expert top-2 MoE: softmax router, the chosen experts' softmax probabilities used as gates WITHOUT
 *   renormalising over the two; experts are gated FFNs gelu_tanh(x·Wgate) ⊙ (x·Wup) · Wdown; no biases.
 *
 * What Grok-2 adds (config fields; zero / Grok-1's value switches each off):
 * - a dense gated MLP (denseFfnSize) on the same normed input beside the experts; (mlp + moe)/√2 before
 *   the post-MoE norm;
 * - router logits soft-capped (routerSoftcap·tanh(x/cap)) before the softmax; top-2 still not renormalised;
 * - after the attention soft-cap, a query at position p > attnTemperatureLen has its scores × log2(p)/log2(L);
 * - exact erf GELU (gelu: 'erf'); untied output; final logits soft-capped after the output scale;
 *   scores × head_dim^-0.5; pad keys not masked (maskPadKeys).
 *
 * Dimensions: N tokens in the batch, D model width (6144), H query heads (48), G key/value heads (8),
 * K head width (128), F expert width (32768), E experts (8), A experts per token (2), V vocabulary.
 *
 * Intermediate values carry llama.cpp's names (attn_norm, Qcur, kqv_out, ffn_moe_out, l_out, …) in the
 * optional trace, so a divergence can be located layer by layer.
 */
import { allocKV, checkKVType, kvRowBytes, kvRowElements, writeKVRows } from '../kernels/kv.js';
import type { Kernels, KVData, KVType, WeightMaps } from '../kernels/types.js';
import type { GrokConfig } from './config.js';
import type { Matrix, ModelMatrix } from '../quant/matrix.js';
import { matmulSplit } from '../kernels/split.js';
import type { ExpertCache, ExpertMatrices } from './expert-cache.js';

export interface LayerWeights {
  attn_norm: Float32Array; //        [D]
  attn_q: ModelMatrix; //                 D → H·K
  attn_k: ModelMatrix; //                 D → G·K
  attn_v: ModelMatrix; //                 D → G·K
  attn_output: ModelMatrix; //            H·K → D
  attn_output_norm: Float32Array; // [D]
  ffn_norm: Float32Array; //         [D]
  ffn_gate_inp: Matrix; //           D → E (router)
  ffn_gate_exps: ModelMatrix[]; //        E × (D → F), GELU side (moe/linear)
  ffn_up_exps: ModelMatrix[]; //          E × (D → F), linear side (moe/linear_v)
  ffn_down_exps: ModelMatrix[]; //        E × (F → D) (moe/linear_1)
  ffn_gate?: ModelMatrix; //              D → I, Grok-2's dense MLP beside the experts (I = denseFfnSize), GELU side
  ffn_up?: ModelMatrix; //                D → I, linear side
  ffn_down?: ModelMatrix; //              I → D
  layer_output_norm: Float32Array; //[D]
}

export interface GrokWeights {
  token_embd?: Matrix; //            rows: V rows of D (the tied embedding); absent on a pipeline stage that neither embeds nor (tied) projects
  output_norm?: Float32Array; //     [D]; only on the stage holding the last layer
  output?: ModelMatrix; //                D → V, only for untied exports; absent = token_embd
  layers: LayerWeights[]; //         the layers of the model's range (ModelOptions.layers), first to last
}

/**
 * Layers [from, to) of the model: a pipeline stage (src/api/pipeline). The stage with layer 0 embeds the
 * tokens; the one with the last layer applies the final norm and the output head; the others take and
 * return the residual stream [N, D].
 */
export interface LayerRange {
  readonly from: number;
  readonly to: number;
}

/** A layer range checked against a model of `nLayers` layers ("K:L" as the CLI writes it, in the error). */
export function checkLayerRange(r: LayerRange, nLayers: number): LayerRange {
  if (!(Number.isInteger(r.from) && Number.isInteger(r.to) && 0 <= r.from && r.from < r.to && r.to <= nLayers)) {
    throw new RangeError(`layer range ${r.from}:${r.to} is not within the model's ${nLayers} layers (expected K:L with 0 ≤ K < L ≤ ${nLayers})`);
  }
  return r;
}

/**
 * Per-sequence key/value memory. Grows on demand up to `capacity` positions. Rows are stored as `kvType`
 * (llama.cpp's -ctk/-ctv): float32, f16 (half the bytes) or q8_0 (34 bytes per 32 values).
 */
export class KVCache {
  /** Positions filled. */
  length = 0;
  /** Per layer: keys / values [allocated, G, K] as kvType rows, RoPE already applied to keys. */
  k: KVData[];
  v: KVData[];
  /** keyMask[p] = 0 when position p holds the pad token (masked out as a key). */
  keyMask: Uint8Array;
  private allocated: number;
  /** Array elements per position (G rows of kvType). */
  private readonly stride: number;

  /** `layers`: how many layers it holds (a pipeline stage's share; default all of the model's). */
  constructor(readonly config: GrokConfig, readonly capacity: number, initial = 0, readonly kvType: KVType = 'f32', readonly layers = config.nLayers) {
    if (!Number.isInteger(capacity) || capacity <= 0) throw new Error(`KV cache capacity must be a positive integer, got ${capacity}`);
    checkKVType(kvType);
    this.stride = config.nKVHeads * kvRowElements(kvType, config.headDim);
    this.allocated = Math.min(capacity, Math.max(initial, 0));
    this.k = Array.from({ length: layers }, () => allocKV(kvType, this.allocated * this.stride));
    this.v = Array.from({ length: layers }, () => allocKV(kvType, this.allocated * this.stride));
    this.keyMask = new Uint8Array(this.allocated);
  }

  /** Bytes of keys and values one position takes over all layers. */
  static bytesPerPosition(config: GrokConfig, kvType: KVType): number {
    return 2 * config.nLayers * config.nKVHeads * kvRowBytes(kvType, config.headDim);
  }

  /** Make room for `n` positions (amortised doubling, never beyond capacity). */
  reserve(n: number): void {
    if (n > this.capacity) throw new Error(`sequence of ${n} tokens exceeds the KV cache capacity of ${this.capacity}`);
    if (n <= this.allocated) return;
    const size = Math.min(this.capacity, Math.max(n, this.allocated * 2, 16));
    const grow = (a: KVData) => {
      const b = allocKV(this.kvType, size * this.stride);
      b.set(a.subarray(0, this.length * this.stride) as never);
      return b;
    };
    this.k = this.k.map(grow);
    this.v = this.v.map(grow);
    const m = new Uint8Array(size);
    m.set(this.keyMask.subarray(0, this.length));
    this.keyMask = m;
    this.allocated = size;
  }

  /** Store T positions' keys and values [T, G, K] (float32) of layer l (of those it holds) at positions pos…pos+T−1, as kvType. */
  write(l: number, pos: number, k: Float32Array, v: Float32Array, T: number): void {
    const G = this.config.nKVHeads, K = this.config.headDim;
    writeKVRows(this.kvType, k, T * G, K, this.k[l]!, pos * G);
    writeKVRows(this.kvType, v, T * G, K, this.v[l]!, pos * G);
  }

  clone(): KVCache {
    const c = new KVCache(this.config, this.capacity, this.length, this.kvType, this.layers);
    const used = this.length * this.stride;
    for (let l = 0; l < this.k.length; l++) {
      c.k[l]!.set(this.k[l]!.subarray(0, used) as never);
      c.v[l]!.set(this.v[l]!.subarray(0, used) as never);
    }
    c.keyMask.set(this.keyMask.subarray(0, this.length));
    c.length = this.length;
    return c;
  }

  /** Positions [from, to) copied out (the engine's prefix cache keeps them for later prompts). */
  exportRows(from: number, to: number): KVRows {
    if (!(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from <= to && to <= this.length)) {
      throw new RangeError(`exportRows: positions ${from}…${to} are not within the ${this.length} filled`);
    }
    const s = this.stride;
    return new KVRows(this.kvType, s, this.k.map((a) => a.slice(from * s, to * s)), this.v.map((a) => a.slice(from * s, to * s)), this.keyMask.slice(from, to));
  }

  /** Append the first `count` positions of rows exported by a cache of the same shape and KV type. */
  importRows(rows: unknown, count: number): void {
    if (!(rows instanceof KVRows) || rows.kvType !== this.kvType || rows.stride !== this.stride || rows.k.length !== this.k.length) {
      throw new Error('importRows: the rows come from a cache of another model or KV type');
    }
    if (!(Number.isInteger(count) && count >= 0 && count <= rows.length)) throw new RangeError(`importRows: ${count} of ${rows.length} positions`);
    this.reserve(this.length + count);
    const s = this.stride, at = this.length * s, n = count * s;
    for (let l = 0; l < this.k.length; l++) {
      this.k[l]!.set(rows.k[l]!.subarray(0, n) as never, at);
      this.v[l]!.set(rows.v[l]!.subarray(0, n) as never, at);
    }
    this.keyMask.set(rows.keyMask.subarray(0, count), this.length);
    this.length += count;
  }
}

/** Positions of a KVCache copied out (KVCache.exportRows): per layer keys and values [positions, G, K] as kvType rows, and their key mask. */
export class KVRows {
  constructor(readonly kvType: KVType, readonly stride: number, readonly k: KVData[], readonly v: KVData[], readonly keyMask: Uint8Array) {}

  get length(): number {
    return this.keyMask.length;
  }

  get bytes(): number {
    let b = this.keyMask.byteLength;
    for (let l = 0; l < this.k.length; l++) b += this.k[l]!.byteLength + this.v[l]!.byteLength;
    return b;
  }

  slice(from: number, to: number): KVRows {
    const s = this.stride;
    return new KVRows(this.kvType, s, this.k.map((a) => a.slice(from * s, to * s)), this.v.map((a) => a.slice(from * s, to * s)), this.keyMask.slice(from, to));
  }
}

export interface ForwardSeq {
  tokens: ArrayLike<number>;
  cache: KVCache;
}

export type TraceFn = (name: string, layer: number, data: Float32Array, rows: number) => void;

/**
 * The router's decision in one layer for every token of the batch (rows in batch order, as the logits):
 * chosen [N, A] expert ids, highest probability first, and gates [N, A] their softmax probabilities (the
 * un-renormalised factors the expert outputs are multiplied by). The buffers are reused: copy what you keep.
 */
export type RouteFn = (layer: number, chosen: Int32Array, gates: Float32Array, rows: number) => void;

export interface ForwardOptions {
  /** Return one row of logits per sequence (its last token) instead of one per token. */
  lastOnly?: boolean;
  trace?: TraceFn;
  /** Called once per layer with the experts each token was sent to (costs nothing when absent). */
  onRoute?: RouteFn;
  /** Called before each layer: what it throws abandons the pass, every cache keeping its length (lengths move at the end). */
  checkpoint?: (layer: number, layers: number) => void;
  /**
   * The residual stream [N, D] entering the model's first layer, for a model whose range does not start at
   * layer 0 (a pipeline stage): the previous stage's output. The tokens are still needed (pad keys' mask).
   */
  hidden?: Float32Array;
}

/**
 * Matrices of at most this many weights take float32 activations in fast mode too (Kernels.matmulExact):
 * int8 activations save nothing measurable there, and fast mode's rounding must not move the router's
 * decisions (Grok-1's router has 6144 × 8 weights; llama.cpp keeps it F32 with F32 inputs). The tiny test
 * fixtures' matrices are all below it.
 */
export const FLOAT_ACTIVATIONS_MAX_WEIGHTS = 1 << 17;

export interface ModelOptions {
  /** KV cache element type; default f16 with fast kernels (as llama.cpp), f32 with exact ones. */
  kvType?: KVType;
  /** The mapped files the weights are views of: checked before each forward pass, released by close(). */
  weightMaps?: WeightMaps;
  /**
   * Experts streamed from disk into a pool of slots (a model larger than its RAM budget): the layers'
   * ffn_*_exps arrays are then empty and every expert comes from here. Closed by close().
   */
  expertCache?: ExpertCache;
  /** The layers this model holds (a pipeline stage); default all. weights.layers holds exactly these. */
  layers?: LayerRange;
}

export class GrokModel {
  /** Element type of the caches newCache() makes. */
  readonly kvType: KVType;
  /** Matrices up to this many weights (and the router always) get float32 activations in every mode. */
  floatActivationsMaxWeights = FLOAT_ACTIVATIONS_MAX_WEIGHTS;
  /** The experts' per-layer buffers, grown on demand and reused (no fresh zeroed arrays per expert). */
  private scratch = { xe: new Float32Array(0), gate: new Float32Array(0), up: new Float32Array(0), down: new Float32Array(0), guess: new Float32Array(0) };

  private readonly weightMaps: WeightMaps | undefined;
  /** Streamed experts (ModelOptions.expertCache), or null when every expert is in memory. */
  readonly expertCache: ExpertCache | null;
  private closed = false;
  /** The layers held: all, or a pipeline stage's range. */
  readonly range: LayerRange;

  constructor(readonly config: GrokConfig, readonly weights: GrokWeights, readonly kernels: Kernels, opts: ModelOptions = {}) {
    this.range = checkLayerRange(opts.layers ?? { from: 0, to: config.nLayers }, config.nLayers);
    const { from, to } = this.range;
    if (weights.layers.length !== to - from) throw new Error(`GrokModel: ${weights.layers.length} layers of weights for the layer range ${from}:${to}`);
    if (this.embeds && !weights.token_embd) throw new Error('GrokModel: the stage holding layer 0 needs token_embd');
    if (this.projects && (!weights.output_norm || !(weights.output ?? weights.token_embd))) throw new Error('GrokModel: the stage holding the last layer needs output_norm and the output head');
    this.kvType = checkKVType(opts.kvType ?? (kernels.mode === 'fast' ? 'f16' : 'f32'));
    kvRowElements(this.kvType, config.headDim); // q8_0 needs a head width that is a multiple of 32
    this.weightMaps = opts.weightMaps;
    this.expertCache = opts.expertCache ?? null;
  }

  /** Whether this model embeds tokens (holds layer 0). */
  get embeds(): boolean {
    return this.range.from === 0;
  }

  /** Whether this model returns logits (holds the last layer, the final norm and the output head). */
  get projects(): boolean {
    return this.range.to === this.config.nLayers;
  }

  /** Release the mapped weight files now (a file no other model holds is unmapped); the model is unusable after. */
  close(): void {
    this.closed = true;
    this.weightMaps?.release();
    this.expertCache?.close();
  }

  private tiny(w: ModelMatrix): boolean {
    return w.nIn * w.nOut <= this.floatActivationsMaxWeights;
  }

  /** y = x·W, float32 activations for tiny matrices (see FLOAT_ACTIVATIONS_MAX_WEIGHTS); tensor-parallel shards as their parts. */
  private matmul(w: ModelMatrix, x: Float32Array, T: number, y: Float32Array): void {
    if (w.layout === 'split') matmulSplit(this.kernels, w, x, T, y, this.tiny(w));
    else if (this.tiny(w)) this.kernels.matmulExact(w, x, T, y);
    else this.kernels.matmul(w, x, T, y);
  }

  /** ys[i] = x·ws[i] for matrices reading the same x: its fast-mode quantisation done once for the large ones. */
  private matmulShared(ws: readonly ModelMatrix[], x: Float32Array, T: number, ys: readonly Float32Array[]): void {
    ws.forEach((w, i) => { if (w.layout === 'split') this.matmul(w, x, T, ys[i]!); });
    const whole = ws.flatMap((w, i) => (w.layout === 'split' ? [] : [i]));
    const big = whole.filter((i) => !this.tiny(ws[i]!));
    whole.forEach((i) => { if (this.tiny(ws[i]!)) this.kernels.matmulExact(ws[i] as Matrix, x, T, ys[i]!); });
    if (big.length === 1) this.kernels.matmul(ws[big[0]!] as Matrix, x, T, ys[big[0]!]!);
    else if (big.length > 1) this.kernels.matmulMany(big.map((i) => ws[i] as Matrix), x, T, big.map((i) => ys[i]!));
  }

  /** A reusable buffer of at least n values (contents undefined). */
  private buffer(name: keyof GrokModel['scratch'], n: number): Float32Array {
    if (this.scratch[name].length < n) this.scratch[name] = new Float32Array(Math.max(n, Math.ceil(this.scratch[name].length * 1.5)));
    return this.scratch[name];
  }

  newCache(capacity = this.config.contextLength): KVCache {
    return new KVCache(this.config, capacity, 0, this.kvType, this.range.to - this.range.from);
  }

  /**
   * One step over the new tokens of every sequence, batched: each weight matrix is applied once to all
   * N tokens, and MoE tokens are grouped by expert. Appends to each sequence's cache.
   * Returns logits [N, V] in sequence order, or [sequences, V] with `lastOnly`; a model whose range ends
   * before the last layer (a pipeline stage) returns the residual stream [N, D] after its layers instead,
   * every row (the stage with the last layer narrows to the rows read, as a single process does).
   */
  forward(seqs: ForwardSeq[], opts: ForwardOptions = {}): Float32Array {
    if (this.closed) throw new Error('forward: this model was closed');
    // A mapped file truncated or rewritten since loading fails this call here, before a page of it is read.
    this.weightMaps?.check();
    const c = this.config;
    const kn = this.kernels;
    const w = this.weights;
    const trace = opts.trace;
    const D = c.dModel, H = c.nHeads, G = c.nKVHeads, K = c.headDim, E = c.nExperts, A = c.nExpertsUsed;
    const HK = H * K, GK = G * K;

    // Token layout of the batch: sequence s owns rows [start[s], start[s] + T_s).
    const starts: number[] = [];
    let N = 0;
    for (const s of seqs) {
      if (s.tokens.length === 0) throw new Error('forward: a sequence with no new tokens');
      const cc = s.cache.config;
      if ((cc !== c && (cc.nLayers !== c.nLayers || cc.nKVHeads !== c.nKVHeads || cc.headDim !== c.headDim)) || s.cache.k.length !== this.range.to - this.range.from) {
        throw new Error('forward: KV cache belongs to another model (layers, KV heads or head width differ)');
      }
      starts.push(N);
      N += s.tokens.length;
    }
    const tokens = new Int32Array(N);
    const positions = new Int32Array(N);
    seqs.forEach((s, i) => {
      s.cache.reserve(s.cache.length + s.tokens.length);
      for (let t = 0; t < s.tokens.length; t++) {
        const id = s.tokens[t]!;
        if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new Error(`token id ${id} is outside the vocabulary (0…${c.vocabSize - 1})`);
        tokens[starts[i]! + t] = id;
        positions[starts[i]! + t] = s.cache.length + t;
        s.cache.keyMask[s.cache.length + t] = c.maskPadKeys && id === c.padToken ? 0 : 1;
      }
    });

    const { from, to } = this.range;
    let x: Float32Array; //                          residual stream [N, D]
    if (this.embeds) {
      if (opts.hidden) throw new Error('forward: hidden states given to the model that embeds the tokens (its range starts at layer 0)');
      // 1. Embedding lookup, ×embedding_multiplier_scale.
      x = new Float32Array(N * D);
      const row = new Float32Array(D);
      for (let n = 0; n < N; n++) {
        kn.getRow(w.token_embd!, tokens[n]!, row);
        for (let i = 0; i < D; i++) x[n * D + i] = row[i]! * c.embeddingMultiplier;
      }
    } else {
      // A pipeline stage: the previous stage's residual stream (copied: it is added to in place).
      if (!opts.hidden || opts.hidden.length !== N * D) throw new Error(`forward: a stage starting at layer ${from} needs hidden states [${N}, ${D}], got ${opts.hidden ? opts.hidden.length : 'none'} values`);
      x = Float32Array.from(opts.hidden);
    }

    // Streamed experts: start reading what the first layer's router would choose for its input while attention runs.
    this.guessExperts(0, x, N);

    let h = new Float32Array(N * D); //              normed input of a block [N, D]
    let q = new Float32Array(N * HK); //             [N, H, K]
    const k = new Float32Array(N * GK); //           [N, G, K]
    const v = new Float32Array(N * GK); //           [N, G, K]
    let attn = new Float32Array(N * HK); //          [N, H·K]
    let o = new Float32Array(N * D); //              block output [N, D]
    let routerLogits = new Float32Array(N * E); //   [N, E]
    let chosen = new Int32Array(N * A); //           [N, A] expert ids
    let gates = new Float32Array(N * A); //          [N, A] their (un-renormalised) probabilities
    // Rows whose results are read: all, or with lastOnly each sequence's last token once the last layer's
    // keys and values are cached (llama.cpp's inp_out_ids): every later step is per row, so those rows
    // get the same bytes as in the full computation.
    let rowsOut = N;
    const lastRows = seqs.map((s, i) => starts[i]! + s.tokens.length - 1);

    for (let l = from; l < to; l++) {
      opts.checkpoint?.(l, c.nLayers);
      const j = l - from; //                        this model's own index of layer l (weights, caches, streamed experts)
      const L = w.layers[j]!;
      // Not when the caller reads every token's routing (onRoute): that needs every row of the last layer too.
      const narrow = opts.lastOnly === true && !opts.onRoute && l === c.nLayers - 1 && seqs.length < N;

      // 2. Attention: h = RMSNorm_0(x); q, k, v; RoPE; cached causal attention; output projection.
      kn.rmsnorm(x, L.attn_norm, c.rmsNormEps, N, D, h);
      trace?.('attn_norm', l, h, N);
      // q, k, v read the same normed input: quantised once (narrowed, q runs later on the picked rows).
      if (narrow) this.matmulShared([L.attn_k, L.attn_v], h, N, [k, v]);
      else this.matmulShared([L.attn_q, L.attn_k, L.attn_v], h, N, [q, k, v]);
      kn.rope(k, N, G, K, positions, c.ropeBase);
      if (narrow) {
        rowsOut = seqs.length;
        const pick = (a: Float32Array, width: number) => {
          const out = new Float32Array(rowsOut * width);
          lastRows.forEach((r, i) => out.set(a.subarray(r * width, (r + 1) * width), i * width));
          return out;
        };
        x = pick(x, D);
        h = pick(h, D);
        q = new Float32Array(rowsOut * HK);
        attn = new Float32Array(rowsOut * HK);
        o = new Float32Array(rowsOut * D);
        routerLogits = new Float32Array(rowsOut * E);
        chosen = new Int32Array(rowsOut * A);
        gates = new Float32Array(rowsOut * A);
      }
      const qPositions = narrow ? Int32Array.from(lastRows, (r) => positions[r]!) : positions;
      if (narrow) this.matmul(L.attn_q, h, rowsOut, q);
      kn.rope(q, rowsOut, H, K, qPositions, c.ropeBase);
      trace?.('Qcur', l, q, rowsOut);
      trace?.('Kcur', l, k, N);
      trace?.('Vcur', l, v, N);
      seqs.forEach((s, i) => {
        const T = s.tokens.length, r0 = starts[i]!, pos0 = s.cache.length;
        s.cache.write(j, pos0, k.subarray(r0 * GK, (r0 + T) * GK), v.subarray(r0 * GK, (r0 + T) * GK), T);
        // Narrowed: only the last query, which sees every key of the sequence.
        const qr = narrow ? i : r0, qT = narrow ? 1 : T, qPos0 = narrow ? pos0 + T - 1 : pos0;
        kn.attention({
          q: q.subarray(qr * HK, (qr + qT) * HK), kCache: s.cache.k[j]!, vCache: s.cache.v[j]!, keyMask: s.cache.keyMask,
          kvType: s.cache.kvType, T: qT, pos0: qPos0, nHeads: H, nKV: G, headDim: K, scale: c.attnOutputMultiplier, softcap: c.attnSoftcap, temperatureLen: c.attnTemperatureLen,
          out: attn.subarray(qr * HK, (qr + qT) * HK),
        });
      });
      const M = rowsOut;
      trace?.('kqv_out', l, attn, M);
      this.matmul(L.attn_output, attn, M, o);
      trace?.('attn_out', l, o, M);
      // x = x + RMSNorm_1(attention output)
      kn.rmsnorm(o, L.attn_output_norm, c.rmsNormEps, M, D, o);
      trace?.('attn_post_norm', l, o, M);
      for (let i = 0; i < M * D; i++) x[i] += o[i]!;
      trace?.('ffn_inp', l, x, M);

      // 3. MoE: h = RMSNorm_2(x); softmax router; top-A experts; gated GELU experts, grouped by expert.
      kn.rmsnorm(x, L.ffn_norm, c.rmsNormEps, M, D, h);
      trace?.('ffn_norm', l, h, M);
      kn.matmulExact(L.ffn_gate_inp as Matrix, h, M, routerLogits); // float32 inputs in every mode (FLOAT_ACTIVATIONS_MAX_WEIGHTS)
      softcap(routerLogits, M * E, c.routerSoftcap); // Grok-2: 30·tanh(x/30) before the softmax
      trace?.('ffn_moe_logits', l, routerLogits, M);
      route(routerLogits, M, E, A, chosen, gates);
      opts.onRoute?.(l, chosen, gates, M);
      trace?.('ffn_moe_probs', l, routerLogits, M);
      trace?.('ffn_moe_topk', l, Float32Array.from(chosen), M);
      o.fill(0);
      // The next layer's experts are guessed from this residual: only its last rows when that layer will
      // run on each sequence's last token alone (lastOnly), as its router will then choose for those.
      const narrowNext = opts.lastOnly === true && !opts.onRoute && l + 1 === c.nLayers - 1 && seqs.length < M;
      const guessFrom = !this.expertCache || !narrowNext ? { x, rows: M }
        : { x: Float32Array.from(lastRows.flatMap((r) => Array.from(x.subarray(r * D, (r + 1) * D)))), rows: lastRows.length };
      this.experts(j, L, h, M, chosen, gates, o, guessFrom);
      trace?.('ffn_moe_out', l, o, M);
      if (L.ffn_gate && L.ffn_up && L.ffn_down) {
        // Grok-2: the dense MLP on the same normed input, beside the experts; (mlp + moe)/√2 before the post-norm.
        const dense = this.denseMlp(L.ffn_gate, L.ffn_up, L.ffn_down, h, M);
        trace?.('ffn_out', l, dense, M);
        for (let i = 0; i < M * D; i++) o[i] = (dense[i]! + o[i]!) / Math.SQRT2;
      }
      // x = x + RMSNorm_3(MoE output)
      kn.rmsnorm(o, L.layer_output_norm, c.rmsNormEps, M, D, o);
      trace?.('ffn_post_norm', l, o, M);
      for (let i = 0; i < M * D; i++) x[i] += o[i]!;
      trace?.('l_out', l, x, M);
    }
    seqs.forEach((s) => { s.cache.length += s.tokens.length; });
    if (!this.projects) return x; // a pipeline stage before the last: the stream goes on to the next

    // 4. Final norm and tied output projection, ×output_multiplier_scale.
    let rows = rowsOut;
    let hs = x;
    if (opts.lastOnly && rowsOut === N) {
      rows = seqs.length;
      hs = new Float32Array(rows * D);
      lastRows.forEach((r, i) => hs.set(x.subarray(r * D, (r + 1) * D), i * D));
    }
    kn.rmsnorm(hs, w.output_norm!, c.rmsNormEps, rows, D, hs);
    trace?.('result_norm', c.nLayers, hs, rows);
    const logits = new Float32Array(rows * c.vocabSize);
    this.matmul(w.output ?? w.token_embd!, hs, rows, logits);
    for (let i = 0; i < logits.length; i++) logits[i] = logits[i]! * c.outputMultiplier;
    softcap(logits, logits.length, c.finalLogitSoftcap); // Grok-2: 50·tanh(z/50), after the scale
    trace?.('result_output', c.nLayers, logits, rows);
    return logits;
  }

  /** Grok-2's dense MLP: down(gelu(h·gate) ⊙ (h·up)) for M rows of h, in a buffer of its own. */
  private denseMlp(gate: ModelMatrix, up: ModelMatrix, down: ModelMatrix, h: Float32Array, M: number): Float32Array {
    const I = this.config.denseFfnSize, D = this.config.dModel;
    const g = this.buffer('gate', M * I).subarray(0, M * I), u = this.buffer('up', M * I).subarray(0, M * I);
    this.matmulShared([gate, up], h, M, [g, u]);
    this.kernels.gelu(g, M * I, u, this.config.gelu);
    const out = new Float32Array(M * D);
    this.matmul(down, g, M, out);
    return out;
  }

  /**
   * Streamed experts: guess layer l's experts by applying its router to the residual x now (before the
   * layers in between have run) and start reading them. The guess only moves reads earlier: layer l
   * computes with what its router then really chooses.
   */
  private guessExperts(l: number, x: Float32Array, N: number): void {
    const cache = this.expertCache;
    if (!cache || l >= this.weights.layers.length) return; // l: this model's own layer index
    const c = this.config, D = c.dModel, E = c.nExperts, A = c.nExpertsUsed;
    const L = this.weights.layers[l]!;
    const h = this.buffer('guess', N * D).subarray(0, N * D);
    this.kernels.rmsnorm(x, L.ffn_norm, c.rmsNormEps, N, D, h);
    const logits = new Float32Array(N * E), chosen = new Int32Array(N * A), gates = new Float32Array(N * A);
    this.kernels.matmulExact(L.ffn_gate_inp as Matrix, h, N, logits);
    softcap(logits, N * E, c.routerSoftcap);
    route(logits, N, E, A, chosen, gates);
    cache.prefetch(l, byUse(chosen, E));
  }

  /**
   * out[n] = Σ over token n's chosen experts of gate · expert(h[n]); each expert runs once on its tokens.
   * `residual`: the rows of the stream the next layer's guess is made from.
   */
  private experts(l: number, L: LayerWeights, h: Float32Array, N: number, chosen: Int32Array, gates: Float32Array, out: Float32Array, residual: { x: Float32Array; rows: number }): void {
    const c = this.config, kn = this.kernels;
    const D = c.dModel, F = c.ffnSize, A = c.nExpertsUsed;
    const cache = this.expertCache;
    // Experts in the order they are computed: with streamed experts, the most used first, those already
    // in memory before those still being read; meanwhile the next layer's guess is read.
    let order: number[];
    if (cache) {
      const used = byUse(chosen, c.nExperts);
      cache.request(l, used);
      this.guessExperts(l + 1, residual.x, residual.rows);
      const ready = used.map((e) => cache.ready(l, e)); // asked once: a read may finish meanwhile
      order = [...used.filter((_, i) => ready[i]), ...used.filter((_, i) => !ready[i])];
    } else {
      order = Array.from({ length: c.nExperts }, (_, e) => e);
    }
    // Each expert's token rows, in expert order: expert e's outputs go to rows [base[e], base[e] + count[e]) of
    // `down`, so that the sum over a token's experts is made in expert order whatever order they ran in.
    const E = c.nExperts;
    const count = new Int32Array(E), base = new Int32Array(E + 1);
    for (let i = 0; i < N * A; i++) count[chosen[i]!]!++;
    for (let e = 0; e < E; e++) base[e + 1] = base[e]! + count[e]!;
    // Buffers for the most tokens one expert can get (every token): reused by every expert and layer.
    const xeAll = this.buffer('xe', N * D), gateAll = this.buffer('gate', N * F), upAll = this.buffer('up', N * F), downAll = this.buffer('down', N * A * D);
    const rows = new Int32Array(N * A); // per expert, indices into chosen/gates (token n = idx / A)
    const fill = new Int32Array(E);
    for (let i = 0; i < N * A; i++) { const e = chosen[i]!; rows[base[e]! + fill[e]!++] = i; }
    for (const e of order) {
      const M = count[e]!;
      if (M === 0) continue;
      const xe = xeAll.subarray(0, M * D), gate = gateAll.subarray(0, M * F), up = upAll.subarray(0, M * F);
      const down = downAll.subarray(base[e]! * D, (base[e]! + M) * D);
      for (let m = 0; m < M; m++) {
        const n = (rows[base[e]! + m]! / A) | 0;
        xe.set(h.subarray(n * D, (n + 1) * D), m * D);
      }
      const W: ExpertMatrices = cache ? cache.acquire(l, e) : { gate: L.ffn_gate_exps[e]!, up: L.ffn_up_exps[e]!, down: L.ffn_down_exps[e]! };
      try {
        // gate and up read the same input: quantised once.
        this.matmulShared([W.gate, W.up], xe, M, [gate, up]);
        kn.gelu(gate, M * F, up, c.gelu); // gate = gelu(gate) ⊙ up
        this.matmul(W.down, gate, M, down);
      } finally {
        cache?.release(l, e);
      }
    }
    for (let e = 0; e < E; e++) {
      for (let r = base[e]!; r < base[e + 1]!; r++) {
        const idx = rows[r]!, n = (idx / A) | 0, g = gates[idx]!;
        const o = n * D, d = r * D;
        for (let i = 0; i < D; i++) out[o + i] += g * downAll[d + i]!;
      }
    }
  }
}

/** x[i] = cap·tanh(x[i]/cap) over n values; cap 0: unchanged. */
function softcap(x: Float32Array, n: number, cap: number): void {
  if (cap > 0) for (let i = 0; i < n; i++) x[i] = cap * Math.tanh(x[i]! / cap);
}

/** The experts that `chosen` names, most used first (ties to the lower index). */
function byUse(chosen: Int32Array, E: number): number[] {
  const count = new Int32Array(E);
  for (const e of chosen) count[e]!++;
  return Array.from({ length: E }, (_, e) => e).filter((e) => count[e]! > 0).sort((a, b) => count[b]! - count[a]! || a - b);
}

/**
 * Router: softmax over the E logits (in place, float64 sums), then the A most probable experts, ties to
 * the lower index (jax.lax.top_k). Gates are the probabilities themselves, not renormalised.
 */
export function route(logits: Float32Array, N: number, E: number, A: number, chosen: Int32Array, gates: Float32Array): void {
  for (let n = 0; n < N; n++) {
    const p = logits.subarray(n * E, (n + 1) * E);
    let max = -Infinity;
    for (let e = 0; e < E; e++) if (p[e]! > max) max = p[e]!;
    let sum = 0;
    const ex = new Float64Array(E);
    for (let e = 0; e < E; e++) { ex[e] = Math.exp(p[e]! - max); sum += ex[e]!; }
    for (let e = 0; e < E; e++) p[e] = ex[e]! / sum;
    for (let a = 0; a < A; a++) {
      let best = -1;
      for (let e = 0; e < E; e++) {
        let taken = false;
        for (let b = 0; b < a; b++) if (chosen[n * A + b] === e) taken = true;
        if (!taken && (best < 0 || ex[e]! > ex[best]!)) best = e;
      }
      chosen[n * A + a] = best;
      gates[n * A + a] = ex[best]! / sum;
    }
  }
}
