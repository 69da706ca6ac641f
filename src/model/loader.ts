/**
 * Loads any supported model into a GrokModel: open the files (formats/open.ts), map their tensor names to
 * the canonical ones (map.ts), locate every tensor of the table shape-checked (weights.ts), then either
 * map the bytes in place (kernels with mapWeight: the native backend's mmap) or read each tensor once
 * straight into memory allocated by the kernels — no second copy, no up-front dequantisation of matrices.
 */
import { openModel } from '../formats/open.js';
import type { ModelSource } from '../formats/tensor-ref.js';
import { referenceKernels } from '../kernels/reference.js';
import { FormatError, ModelTooLargeError } from '../base/errors.js';
import type { Kernels, KVType, WeightMaps } from '../kernels/types.js';
import type { Matrix, ModelMatrix } from '../quant/matrix.js';
import type { ModelBinding } from './binding.js';
import type { GrokConfig } from './config.js';
import { checkLayerRange, GrokModel, type GrokWeights, type LayerRange, type LayerWeights } from './grok.js';
import { bindModel } from './map.js';
import { gib, memoryAvailability, memoryPlan, streamingPlan, type MemoryAvailability, type MemoryPlan } from './memory.js';
import { ExpertCache, type ExpertLocation } from './expert-cache.js';
import type { EvictionPolicy } from './expert-policy.js';
import { SyncReadQueue } from '../kernels/io.js';
import { canonicalName, layerTensors, tensorDef, type TensorDef } from './tensors.js';
import { locateMatrix, locateVector, locationBytes, WeightFiles, type ByteRange, type MatrixLocation, type VectorLocation } from './weights.js';

export interface LoadOptions {
  kernels?: Kernels;
  /** A config.json / golden.json to use instead of the one found beside the model. */
  configPath?: string;
  /** Context length in tokens, instead of the model's. */
  contextLength?: number;
  /** KV cache element type (default: f16 with fast kernels, f32 with exact ones). */
  kvType?: KVType;
  /** Called after each tensor with bytes read so far and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Called once before any weight is read: the weights' size against the memory available. */
  onMemoryPlan?: (plan: MemoryPlan) => void;
  /** Called once before any weight is read with the model's own configuration (before contextLength replaces its context length). */
  onConfig?: (config: Readonly<GrokConfig>) => void;
  /** The memory to plan against (default: measured now, this process's cgroup included: src/base/memory.ts). */
  memory?: number | MemoryAvailability;
  /**
   * Bytes of memory the weights may take. A model larger than this keeps its non-expert weights in memory
   * and streams its experts from disk into a pool of expert slots filling the rest (ExpertCache). Absent:
   * the memory available less max(1 GiB, 10 %), and only when the smallest pool fits in it; Infinity: never.
   */
  ramBudget?: number;
  /** Stream the experts even when the model fits the budget (every expert then gets a slot unless ramBudget says fewer). */
  streamExperts?: boolean;
  /** Which expert leaves the pool (default 'lru'). */
  expertPolicy?: EvictionPolicy;
  /** Threads reading experts (default 4). */
  ioThreads?: number;
  /** Measure the disk's read rate before loading streamed experts (a short read of the first expert; default true). */
  probeDisk?: boolean;
  /**
   * Only these layers (a pipeline stage): only their tensors are read or mapped, with the embedding when
   * the range starts at 0 and the final norm and output head when it ends at the last layer.
   */
  layers?: LayerRange;
}

export interface LoadedModel {
  model: GrokModel;
  source: ModelSource;
  binding: ModelBinding;
}

export async function loadModel(path: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  await opts.kernels?.ready?.();
  const source = openModel(path);
  try {
    const binding = bindModel(source, opts.configPath);
    opts.onConfig?.(binding.config);
    const config: GrokConfig = opts.contextLength ? { ...binding.config, contextLength: opts.contextLength } : binding.config;
    const kernels = opts.kernels ?? referenceKernels;
    const range = checkLayerRange(opts.layers ?? { from: 0, to: config.nLayers }, config.nLayers);
    const { weights, maps, experts } = readWeights(path, binding, config, kernels, opts, range);
    try {
      return { model: new GrokModel(config, weights, kernels, { ...(opts.kvType ? { kvType: opts.kvType } : {}), ...(maps ? { weightMaps: maps } : {}), ...(experts ? { expertCache: experts } : {}), layers: range }), source, binding };
    } catch (e) {
      maps?.release();
      experts?.close();
      throw e;
    }
  } finally {
    source.close();
  }
}

type Located = { name: string; def: TensorDef; loc: MatrixLocation | VectorLocation };

/**
 * Every tensor of the table located, shape-checked: layers first, then the embedding and the final norm (the
 * order errors are reported in). With a range (a pipeline stage): its layers, the embedding where it starts
 * at 0 or projects with the tied embedding, the final norm and output head where it ends at the last layer.
 */
function locateAll(binding: ModelBinding, c: GrokConfig, range: LayerRange = { from: 0, to: c.nLayers }): { layers: Located[][]; model: Located[] } {
  const locate = (def: TensorDef, name: string): Located => {
    const { nIn, nOut } = def.dims(c);
    return { name, def, loc: def.kind === 'vector' ? locateVector(binding, name, nIn) : locateMatrix(binding, name, nIn, nOut, def.scope === 'expert' ? c.nExperts : undefined) };
  };
  const layers: Located[][] = [];
  for (let l = range.from; l < range.to; l++) {
    layers.push(layerTensors(c).flatMap((def) => Array.from({ length: def.scope === 'expert' ? c.nExperts : 1 }, (_, e) => locate(def, canonicalName(def, l, e)))));
  }
  const untied = binding.tensors.has('output'), first = range.from === 0, last = range.to === c.nLayers;
  const names = [...(first || (last && !untied) ? ['token_embd'] : []), ...(last ? ['output_norm'] : []), ...(last && untied ? ['output'] : [])];
  const model = names.map((n) => locate(tensorDef(n), n));
  return { layers, model };
}

/** Bytes of all the weights, and of the experts among them. */
function byteTotals(layers: Located[][], model: Located[]): { total: number; expertBytes: number } {
  const all = [...layers.flat(), ...model];
  return {
    total: all.reduce((a, t) => a + locationBytes(t.loc), 0),
    expertBytes: all.reduce((a, t) => a + (t.def.scope === 'expert' ? locationBytes(t.loc) : 0), 0),
  };
}

/** [layer][expert] → where that expert's gate, up and down matrices are. */
function expertLocations(layers: Located[][]): ExpertLocation[][] {
  return layers.map((ts) => {
    const by = (name: string) => ts.filter((t) => t.def.name === name).map((t) => t.loc as MatrixLocation);
    const g = by('ffn_gate_exps'), u = by('ffn_up_exps'), d = by('ffn_down_exps');
    return g.map((gate, e) => ({ gate, up: u[e]!, down: d[e]! }));
  });
}

/** The sizes a RAM budget is made of, as the loader counts them (`--ram-budget`; `grok cache-sim`). */
export interface WeightSizes {
  /** Every weight the model loads. */
  readonly totalBytes: number;
  /** What stays in memory when the experts are streamed: all but the experts. */
  readonly residentBytes: number;
  /** One expert of one layer (gate + up + down) as stored: the experts' bytes over layers × experts. */
  readonly expertBytes: number;
  /** Memory one slot of the expert pool takes with reads aligned to `alignment`; null when the experts cannot be streamed (stored transposed). */
  readonly slotBytes: number | null;
}

/**
 * The weight sizes of the model at `path`, located as loadModel does (no weight is read). `alignment`: of
 * the reads into expert slots (`readAlignment`).
 */
export function weightSizes(path: string, opts: { configPath?: string; alignment?: number } = {}): WeightSizes {
  const source = openModel(path);
  try {
    const binding = bindModel(source, opts.configPath);
    const c = binding.config;
    const { layers, model } = locateAll(binding, c);
    const { total, expertBytes } = byteTotals(layers, model);
    let slotBytes: number | null;
    try {
      slotBytes = ExpertCache.slotBytesFor(expertLocations(layers), opts.alignment ?? 1);
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
      slotBytes = null;
    }
    return { totalBytes: total, residentBytes: total - expertBytes, expertBytes: expertBytes / (c.nLayers * c.nExperts), slotBytes };
  } finally {
    source.close();
  }
}

/** Bytes of each layer's weights, and of the embedding and the head (final norm and untied output), as a pipeline split counts them (`grok plan`). */
export interface LayerSizes {
  readonly layers: readonly number[];
  readonly embedding: number;
  /** The final norm, and the untied output matrix where there is one (a tied model's last stage holds the embedding too). */
  readonly head: number;
  readonly tied: boolean;
}

export function layerSizes(path: string, opts: { configPath?: string } = {}): LayerSizes {
  const source = openModel(path);
  try {
    const binding = bindModel(source, opts.configPath);
    const { layers, model } = locateAll(binding, binding.config);
    const bytes = (name: string) => model.filter((t) => t.name === name).reduce((a, t) => a + locationBytes(t.loc), 0);
    return {
      layers: layers.map((ts) => ts.reduce((a, t) => a + locationBytes(t.loc), 0)),
      embedding: bytes('token_embd'), head: bytes('output_norm') + bytes('output'), tied: !binding.tensors.has('output'),
    };
  } finally {
    source.close();
  }
}

/** The alignment of the reads these kernels stream experts with (4096 on the native I/O threads, 1 elsewhere). */
export function readAlignment(kernels: Kernels): number {
  const queue = kernels.readQueue?.(1);
  if (!queue) return new SyncReadQueue(kernels).alignment;
  try {
    return queue.alignment;
  } finally {
    queue.close();
  }
}

/**
 * Locate every tensor (all shape errors before any read), then read or map them into the weight record.
 * Copied weights that cannot fit in the memory available are refused before a byte is read.
 */
function readWeights(path: string, binding: ModelBinding, c: GrokConfig, kernels: Kernels, opts: LoadOptions, range: LayerRange): { weights: GrokWeights; maps: WeightMaps | undefined; experts: ExpertCache | undefined } {
  const { layers, model } = locateAll(binding, c, range);
  const { total, expertBytes } = byteTotals(layers, model);
  // The budget: given (Infinity: never stream), or by default what the memory available leaves beside a
  // margin for the KV cache and the runtime. A model larger than it streams its experts; by default only
  // when the smallest pool fits too (else it is mapped and paged by the OS, as before).
  let budget = opts.ramBudget;
  const auto = budget === undefined && opts.streamExperts !== true;
  if (auto) {
    const avail = typeof opts.memory === 'number' ? opts.memory : (opts.memory ?? memoryAvailability()).bytes;
    const b = avail - Math.max(2 ** 30, 0.1 * avail);
    if (total > b) budget = b;
  }
  let stream = opts.streamExperts === true || (budget !== undefined && total > budget);
  let experts: ExpertCache | undefined;
  let streaming: MemoryPlan | undefined;
  if (stream) {
    const r = expertCache(path, layers, c, kernels, { ...opts, ...(budget === undefined ? {} : { ramBudget: budget }) }, total - expertBytes, expertBytes, auto);
    if (r) {
      streaming = r.plan;
      experts = r.cache ?? undefined;
    } else stream = false;
  }
  const residentBytes = total - (stream ? expertBytes : 0);
  const mapped = typeof kernels.mapWeight === 'function' && (kernels.weightPlacement?.(residentBytes) ?? 'map') === 'map';
  const plan = streaming ?? (opts.memory === undefined ? memoryPlan(total, mapped) : memoryPlan(total, mapped, opts.memory));
  opts.onMemoryPlan?.(plan);
  if (plan.verdict === 'too-large') {
    experts?.close();
    throw new ModelTooLargeError(`${path}: ${plan.message}`);
  }

  const maps = mapped ? kernels.mapWeights?.() : undefined;
  const map = (r: ByteRange): Uint8Array | null | undefined => (maps ? maps.map(r.file, r.offset, r.length) : kernels.mapWeight?.(r.file, r.offset, r.length));
  const files = new WeightFiles();
  let done = 0;
  try {
    const read = (t: Located): Float32Array | ModelMatrix => {
      const v = t.def.kind === 'vector' ? files.vector(t.loc as VectorLocation) : matrix(files, kernels, t.loc as MatrixLocation, mapped ? map : undefined);
      done += locationBytes(t.loc);
      opts.onProgress?.(done, residentBytes);
      return v;
    };
    const byName = new Map(model.map((t) => [t.name, read(t)]));
    const weights: GrokWeights = {
      ...(byName.has('token_embd') ? { token_embd: byName.get('token_embd') as Matrix } : {}),
      ...(byName.has('output_norm') ? { output_norm: byName.get('output_norm') as Float32Array } : {}),
      layers: layers.map((ts) => {
        const L: Record<string, Float32Array | ModelMatrix | ModelMatrix[]> = {};
        for (const t of ts) {
          if (t.def.scope === 'expert') {
            const list = (L[t.def.name] ??= []) as ModelMatrix[];
            if (!experts) list.push(read(t) as ModelMatrix); // streamed experts stay on disk: the lists stay empty
          } else L[t.def.name] = read(t);
        }
        return L as unknown as LayerWeights; // the keys of LayerWeights are the table's names
      }),
    };
    const output = byName.get('output');
    if (output) weights.output = output as ModelMatrix;
    return { weights, maps, experts };
  } catch (e) {
    maps?.release();
    experts?.close();
    throw e;
  } finally {
    files.close();
  }
}

/**
 * The pool of expert slots a RAM budget leaves room for, with its plan. The smallest budget holds the
 * resident weights and nExpertsUsed experts per layer.
 */
function expertCache(path: string, layers: Located[][], c: GrokConfig, kernels: Kernels, opts: LoadOptions, residentBytes: number, expertBytes: number, auto: boolean): { plan: MemoryPlan; cache: ExpertCache | null } | null {
  const locs = expertLocations(layers);
  const count = layers.length * c.nExperts;
  const queue = kernels.readQueue?.(opts.ioThreads ?? 4) ?? new SyncReadQueue(kernels);
  // Slot size as the cache lays it out (alignment included): measured on a one-slot layout first.
  let slotBytes: number;
  try {
    slotBytes = ExpertCache.slotBytesFor(locs, queue.alignment);
  } catch (e) {
    queue.close();
    throw e;
  }
  const budget = opts.ramBudget ?? Infinity;
  const least = c.nExpertsUsed * layers.length;
  const slots = Math.min(count, Math.floor((budget - residentBytes) / slotBytes));
  if (slots < least) {
    queue.close();
    if (auto) return null; // the default budget cannot hold the smallest pool: not streamed
    throw new ModelTooLargeError(`${path}: a RAM budget of ${gib(budget)} is too small: the weights kept in memory take ${gib(residentBytes)} and at least ${c.nExpertsUsed} experts per layer (${least} × ${gib(slotBytes)}) must fit beside them; the smallest budget for this model is ${gib(residentBytes + least * slotBytes)}`);
  }
  const bytesPerToken = (c.nExpertsUsed * layers.length * expertBytes / count) * (1 - slots / count);
  const planWith = (rate: number | null) => streamingPlan({
    budgetBytes: Number.isFinite(budget) ? budget : residentBytes + slots * slotBytes, residentBytes, expertBytes, experts: count, slots, slotBytes,
    readBytesPerSecond: rate, bytesPerToken, ceilingTokensPerSecond: rate === null ? null : bytesPerToken === 0 ? Infinity : rate / bytesPerToken,
  }, memory);
  // The memory is measured once, before the pool takes its share of it.
  const memory = opts.memory ?? memoryAvailability();
  const first = planWith(null);
  if (first.verdict === 'too-large') {
    queue.close();
    return { plan: first, cache: null };
  }
  let rate: number | null = null;
  let cache: ExpertCache;
  try {
    if (opts.probeDisk !== false) rate = ExpertCache.probe(queue, locs);
    cache = new ExpertCache(locs, slots, queue, opts.expertPolicy ?? 'lru');
  } catch (e) {
    queue.close();
    throw e;
  }
  return { plan: planWith(rate), cache };
}

type MapFn = (r: ByteRange) => Uint8Array | null | undefined;

/** Bytes of a range where the kernels read them: mapped in place by `map` (when it can), else read into their memory. */
function bytesOf(files: WeightFiles, kernels: Kernels, r: ByteRange, map: MapFn | undefined): Uint8Array {
  const mapped = map?.(r);
  if (mapped) return mapped;
  const data = kernels.allocWeight(r.length);
  files.readInto(r, data);
  return data;
}

function matrix(files: WeightFiles, kernels: Kernels, m: MatrixLocation, map: MapFn | undefined): ModelMatrix {
  if (m.layout === 'rows') return { layout: 'rows', type: m.type, nIn: m.nIn, nOut: m.nOut, data: bytesOf(files, kernels, m.bytes, map) };
  if (m.layout === 'split') {
    // Tensor-parallel shards stay apart, each mapped or read where it lies (src/kernels/split.ts applies them).
    return { layout: 'split', axis: m.axis, nIn: m.nIn, nOut: m.nOut, parts: m.parts.map((p) => ({ layout: 'rows', type: p.type, nIn: p.nIn, nOut: p.nOut, data: bytesOf(files, kernels, p.bytes, map) })) };
  }
  if (m.layout === 'transpose') {
    // A layout the kernels cannot use as stored (routers of the checkpoint): transposed into f32 rows, copied.
    const data = kernels.allocWeight(m.nIn * m.nOut * 4);
    files.transposed(m, new Float32Array(data.buffer, data.byteOffset, m.nIn * m.nOut));
    return { layout: 'rows', type: 'f32', nIn: m.nIn, nOut: m.nOut, data };
  }
  const q = bytesOf(files, kernels, m.q, map);
  const s = bytesOf(files, kernels, m.scales, map);
  // A mapped range is not necessarily 2-byte aligned (pickle payloads): copy the scales then.
  const scales = s.byteOffset % 2 === 0 ? s : (() => { const a = kernels.allocWeight(s.length); a.set(s); return a; })();
  return {
    layout: 'xai8', nIn: m.nIn, nOut: m.nOut, groups: m.groups,
    q: new Int8Array(q.buffer, q.byteOffset, q.length),
    scales: new Uint16Array(scales.buffer, scales.byteOffset, m.groups * m.nOut),
  };
}
