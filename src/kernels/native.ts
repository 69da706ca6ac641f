/**
 * Kernels in C (native/), loaded as a Node-API addon built by scripts/build-native.mjs at install time.
 *
 * - Instruction-set level chosen at run time (scalar / AVX2 / AVX-512 with VNNI / + BF16 on x86-64, NEON /
 *   dotprod on aarch64); GROK_NATIVE_ISA=scalar|avx2|avx512|avx512_bf16|neon|neon_dot (or the `isa` option) caps it: a level
 *   above what the CPU runs (or another architecture's) means the best it runs, with a one-line note.
 * - Its own persistent thread pool (threads − 1 pthreads spin briefly, then sleep); calls stay synchronous.
 * - Weights in place: `mapWeight` maps model files read-only and returns views of their bytes, so the
 *   loader copies nothing, memory grows only with pages touched, and larger-than-RAM models page from
 *   disk. `mmap: false` falls back to reading into `allocWeight` memory (anonymous, huge-page advised).
 *   Mappings are keyed by the file's identity (device, inode, size, mtime), held per loaded model
 *   (`mapWeights`), checked before each forward pass (a file truncated or rewritten in place fails the
 *   request instead of raising SIGBUS) and unmapped when the last model holding them is closed.
 * - Numerics as the WebAssembly kernels: 'exact' (float32 activations, float32-or-better sums: matches
 *   the fixtures' float64 logits to 1e-4) and 'fast' (activations int8 per 32 values, exact integer
 *   block sums; f16 and bf16 rows read in place with float32 sums, and at avx512_bf16 bf16 rows against
 *   the activations rounded to bf16, vdpbf16ps as llama.cpp). Batch invariant: a token's row is bit-identical whatever T, its place in the batch
 *   and the thread count (native/internal.h).
 *
 * Every length and offset is checked here before the addon sees it; the addon checks again.
 */
import { constants as bufferConstants } from 'node:buffer';
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { FormatError, ModelFileChangedError } from '../base/errors.js';
import { availableMemory } from '../base/memory.js';
import { allBlockFormats, blockFormat, rowBytes, type BlockType } from '../quant/index.js';
import { WEIGHTED_TYPES } from '../quant/weighted.js';
import type { Matrix, RowMatrix, Xai8Matrix } from '../quant/matrix.js';
import { defaultThreads, physicalCoreCpus } from './cpus.js';
import { checkMatmul, checkMatmulMany, getRowReference } from './reference.js';
import { checkTemperatureLen, rmsnorm, rope } from './small-ops.js';
import { attentionKV } from './kv.js';
import type { AttentionArgs, GeluForm, Kernels, KVData, KVType, ReadQueue, WeightMaps } from './types.js';
import { readError } from './io.js';
import { kernelModule, type KernelMode } from './wasm.js';

/** The addon's exports (native/addon.c). */
interface NativeAddon {
  info(): { best: string; levels: string[]; features: string; types: [number, string, number, number][] };
  create(threads: number, isa: string, spinUs: number): object;
  destroy(ctx: object): void;
  matmulRows(ctx: object, type: number, w: Uint8Array, nIn: number, nOut: number, x: Float32Array, T: number, y: Float32Array, fast: boolean): void;
  matmulXai8(ctx: object, q: Int8Array, scales: Uint16Array, nIn: number, nOut: number, groups: number, x: Float32Array, T: number, y: Float32Array, fast: boolean): void;
  matmulMany(ctx: object, mats: ({ type: number; w: Uint8Array; nOut: number; y: Float32Array } | { q: Int8Array; scales: Uint16Array; groups: number; nOut: number; y: Float32Array })[],
    nIn: number, x: Float32Array, T: number, fast: boolean): void;
  setAffinity(ctx: object, cpus: Int32Array): number;
  getRow(type: number, w: Uint8Array, nIn: number, nOut: number, r: number, out: Float32Array): void;
  attention(ctx: object, q: Float32Array, k: KVData, v: KVData, mask: Uint8Array, out: Float32Array,
    T: number, pos0: number, nHeads: number, nKV: number, headDim: number, scale: number, softcap: number, kvType: number, fast: boolean,
    temperatureLen: number): void;
  /** form: GELU_FORMS' code (native/gn.h GN_GELU_TANH / GN_GELU_ERF); fast: the erf form in float32 lanes */
  gelu(ctx: object, x: Float32Array, n: number, up: Float32Array | undefined, form: number, fast: boolean): void;
  alloc(bytes: number): ArrayBuffer;
  /** [mapping, size, identity "dev:ino:size:mtimeNs" of the opened file] */
  mapFile(path: string): [object, number, string];
  /** [size, identity] of the mapped file now (fstat of the mapping's descriptor); null once released. */
  mapStat(map: object): [number, string] | null;
  /** Unmap now (views still held read zeros); idempotent. */
  mapRelease(map: object): void;
  /** File mappings open and not released in this process. */
  mapLive(): number;
  mapView(map: object, offset: number, length: number): ArrayBuffer;
  mapAdvise(map: object, offset: number, length: number, advice: number): number;
  mapLock(map: object, offset: number, length: number): number;
  mapPopulate(map: object, offset: number, length: number): number;
  quantize(type: number, x: Float32Array, nIn: number, rows: number, dst: Uint8Array, isa: string): void;
  gaussFill(out: Float32Array, state: Uint32Array, scale: number): void;
  dequantize(type: number, src: Uint8Array, n: number, out: Float32Array): void;
  quantizeWeighted(type: number, x: Float32Array, nIn: number, rows: number, dst: Uint8Array, isa: string, weights: Float32Array): void;
  adviseHugePages(view: Uint8Array): number;
  xai8Rows(q: Int8Array, scales: Uint16Array, nIn: number, nOut: number, groups: number, r0: number, count: number, out: Float32Array): void;
  xai8Q8_0(q: Int8Array, scales: Uint16Array, nIn: number, nOut: number, groups: number, r0: number, count: number, dst: Uint8Array, vals: Float32Array | undefined): number;
  ioCreate(threads: number): object;
  /** [file index (negative: −errno), O_DIRECT possible] */
  ioOpen(io: object, path: string): [number, boolean];
  ioAlloc(io: object, bytes: number): ArrayBuffer;
  /** ticket > 0, or −errno */
  ioSubmit(io: object, file: number, offset: number, length: number, need: number, dst: Uint8Array): number;
  /** [errno (0: done), offset where it failed] */
  ioWait(io: object, ticket: number): [number, number];
  ioDone(io: object, ticket: number): boolean;
  ioCancel(io: object, ticket: number): void;
  ioTotals(io: object): [number, number, number];
  ioClose(io: object): void;
  xai8Quantize(q: Int8Array, scales: Uint16Array, nIn: number, nOut: number, groups: number, r0: number, count: number, dst: Uint8Array, type: number, isa: string, weights: Float32Array | undefined): void;
}

export type MapAdvice = 'normal' | 'willneed' | 'random' | 'sequential';
const ADVICE: Record<MapAdvice, number> = { normal: 0, willneed: 1, random: 2, sequential: 3 };

export interface NativeKernelOptions {
  readonly mode?: KernelMode;
  /** Threads including the caller's; default one per physical core this process may use (src/kernels/cpus.ts). */
  readonly threads?: number;
  /**
   * Pin thread i (0 = the caller) to one CPU (Linux): true = one physical core each, in CPU order; a list
   * = those CPUs, thread i on cpus[i mod length]. A failure is reported once and the threads stay unpinned.
   */
  readonly cpuAffinity?: boolean | readonly number[];
  /** Highest instruction-set level to use (default: GROK_NATIVE_ISA, else the best this CPU runs). */
  readonly isa?: string;
  /** Microseconds an idle worker spins before sleeping (default 100). */
  readonly spinUs?: number;
  /**
   * true: map model files and use their bytes in place; false: read them into allocated (huge-page
   * advised) memory. 'auto' (default): read a model whose weights fit in 60 % of the available memory,
   * map a larger one — with a mapped file every 4 KiB page costs a TLB walk, which at the read rates of the
   * matmuls makes a model in RAM decode and prefill measurably slower (BENCHMARKS.md, Q4_K slice); mapping
   * is what lets a model larger than RAM run at all. `mlock: true` also maps.
   */
  readonly mmap?: boolean | 'auto';
  /** mlock mapped weights (needs RLIMIT_MEMLOCK; a failure is reported once and loading goes on). */
  readonly mlock?: boolean;
  /** madvise for mapped weights (default 'normal': the kernel's read-ahead). */
  readonly advice?: MapAdvice;
  /**
   * Fill the page tables of mapped weights in a background thread (reading from disk what is not cached),
   * so the first passes do not fault every 64 KiB. 'auto' (default): only for a file that fits in 80 % of
   * the memory available (MemAvailable, and the cgroup limit) — a larger-than-memory model is left to
   * demand paging instead of being pushed through the cache once for nothing.
   */
  readonly populate?: boolean | 'auto';
}

/** The addon file: GROK_NATIVE_ADDON, else dist/native/grok-native.node beside this build. */
export function nativeAddonPath(): string {
  return process.env.GROK_NATIVE_ADDON || fileURLToPath(new URL('../../native/grok-native.node', import.meta.url));
}

let loaded: { addon: NativeAddon; path: string } | { error: string } | undefined;

/** Load the addon once; on failure the reason (missing file, wrong architecture, ABI mismatch…). */
export function loadNativeAddon(): { addon: NativeAddon; path: string } | { error: string } {
  if (loaded) return loaded;
  const file = nativeAddonPath();
  try {
    const mod = { exports: {} as NativeAddon };
    process.dlopen(mod, file);
    const addon = mod.exports;
    checkTypeTable(addon);
    loaded = { addon, path: file };
  } catch (e) {
    loaded = { error: `${file}: ${(e as Error).message.split('\n')[0]}` };
  }
  return loaded;
}

/** The C side's block-type table must agree with src/quant (ggml ids, block sizes): else refuse to load. */
function checkTypeTable(addon: NativeAddon): void {
  const c = new Map(addon.info().types.map(([id, name, bs, bb]) => [name, { id, bs, bb }]));
  for (const f of allBlockFormats()) {
    const t = c.get(f.name);
    if (!t || t.id !== f.ggmlId || t.bs !== f.blockSize || t.bb !== f.bytesPerBlock) {
      throw new Error(`block type table mismatch for ${f.name} (addon ${JSON.stringify(t)}, TypeScript id ${f.ggmlId}): rebuild with npm run build`);
    }
  }
}

export interface NativeInfo {
  /** The backend createKernels() picks here: GROK_BACKEND when set, else native, wasm or reference. */
  readonly backend: 'native' | 'wasm' | 'reference';
  /** Whether the addon loaded here. */
  readonly available: boolean;
  /** Why not, when it did not (or why GROK_NATIVE_ISA cannot be used). */
  readonly error?: string;
  readonly addon?: string;
  /** Level a default kernel set uses (after GROK_NATIVE_ISA) and every level this CPU runs. */
  readonly isa?: string;
  readonly levels?: readonly string[];
  /** CPU features the kernels use, as detected. */
  readonly features?: string;
  readonly threads: number;
  readonly node: string;
  readonly napi: string;
}

/** What `grok info` prints about the native backend. */
export function nativeInfo(threads = defaultThreads()): NativeInfo {
  const l = loadNativeAddon();
  const forced = process.env.GROK_BACKEND;
  const backend = forced === 'native' || forced === 'wasm' || forced === 'reference' ? forced
    : 'addon' in l ? 'native' : kernelModule() ? 'wasm' : 'reference';
  const base = { backend, threads, node: process.version, napi: String(process.versions.napi ?? '?') } as const;
  if ('error' in l) return { available: false, error: l.error, ...base };
  const i = l.addon.info();
  const common = { available: true, addon: l.path, levels: i.levels, features: i.features, ...base };
  try {
    const p = pickIsa(i.best, i.levels, process.env.GROK_NATIVE_ISA);
    return { ...common, isa: p.isa, ...(p.note ? { error: p.note } : {}) };
  } catch (e) {
    return { ...common, error: (e as Error).message }; // a GROK_NATIVE_ISA this CPU cannot run
  }
}

/** Every level the addon knows, lowest first per architecture (native/gn.h GN_ISA_*). */
const ISA_ORDER: Record<string, readonly string[]> = { x64: ['scalar', 'avx2', 'avx512', 'avx512_bf16'], arm64: ['scalar', 'neon', 'neon_dot'] };

/**
 * The level to run for a requested cap: the requested one when this CPU runs it; a level above what this
 * CPU runs, or one of another architecture, caps at the best this CPU runs, with a note saying so (a
 * GROK_NATIVE_ISA shared between machines is a ceiling, not a demand). An unknown name is an error.
 */
function pickIsa(best: string, levels: readonly string[], requested: string | undefined): { isa: string; note?: string } {
  if (!requested || levels.includes(requested)) return { isa: requested || best };
  const known = new Set(Object.values(ISA_ORDER).flat());
  if (!known.has(requested)) {
    throw new Error(`GROK_NATIVE_ISA / isa '${requested}' is not a level this CPU runs (${levels.join(', ')})`);
  }
  const order = ISA_ORDER[process.arch] ?? [];
  const why = order.includes(requested) ? 'is above what this CPU runs' : `is not a level of ${process.arch} CPUs`;
  return { isa: best, note: `GROK_NATIVE_ISA / isa '${requested}' ${why} (${levels.join(', ')}); using ${best}` };
}

/** Quantise `rows` rows of `nIn` floats (x[0 … rows·nIn)) into `type` blocks at dst[0 …]. */
export type RowQuantizer = (type: BlockType, x: Float32Array, nIn: number, rows: number, dst: Uint8Array) => void;

/**
 * The addon's quantisers (native/quantize.c: the same bytes as the `quantize` of src/quant/, ~100× faster)
 * at level `isa` (default: GROK_NATIVE_ISA, else the best this CPU runs), or undefined where the addon does
 * not load or GROK_BACKEND asks for another backend.
 */
export function nativeQuantizer(isa?: string): RowQuantizer | undefined {
  const forced = process.env.GROK_BACKEND;
  if (forced && forced !== 'native') return undefined;
  const l = loadNativeAddon();
  if ('error' in l) return undefined;
  const addon = l.addon;
  const info = addon.info();
  const level = pickIsa(info.best, info.levels, isa ?? process.env.GROK_NATIVE_ISA).isa;
  return (type, x, nIn, rows, dst) => {
    const f = blockFormat(type);
    if (!f.quantize || TS_ONLY_QUANT_TYPES.has(type)) throw new Error(`quantize: ${type} has no native quantiser`);
    if (!Number.isInteger(nIn) || nIn < 1 || nIn > 0x7fffffff) throw new Error(`quantize: nIn must be a positive integer, got ${nIn}`);
    if (!Number.isInteger(rows) || rows < 0 || rows > 0x7fffffff) throw new Error(`quantize: rows must be a non-negative integer, got ${rows}`);
    const rb = rowBytes(f, nIn); // throws unless nIn is a whole number of blocks
    if (x.length < rows * nIn) throw new Error(`quantize: ${rows}×${nIn} values needed, ${x.length} given`);
    if (dst.length < rows * rb) throw new Error(`quantize: ${type}[${rows}×${nIn}] needs ${rows * rb} bytes, has ${dst.length}`);
    addon.quantize(f.ggmlId, x, nIn, rows, dst, level);
  };
}

/**
 * Types the addon does not quantise (native/quantize.c has no lane for them): the grid-search i-quants IQ1_S,
 * IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S and IQ3_XXS, written by their TypeScript quantisers (src/quant) instead.
 */
export const TS_ONLY_QUANT_TYPES: ReadonlySet<BlockType> = new Set(['iq1_s', 'iq1_m', 'iq2_xxs', 'iq2_xs', 'iq2_s', 'iq3_xxs']);

/** A quantiser with an importance matrix: `weights` (nIn values) weigh every row's columns. */
export type WeightedRowQuantizer = (type: BlockType, x: Float32Array, nIn: number, rows: number, dst: Uint8Array, weights: Float32Array) => void;

/**
 * The addon's quantisers with an importance matrix (the bytes of src/quant/weighted.ts, WEIGHTED_TYPES) at level
 * `isa`, or undefined where nativeQuantizer() is.
 */
export function nativeWeightedQuantizer(isa?: string): WeightedRowQuantizer | undefined {
  if (!nativeQuantizer(isa)) return undefined;
  const addon = (loadNativeAddon() as { addon: NativeAddon }).addon;
  const info = addon.info();
  const level = pickIsa(info.best, info.levels, isa ?? process.env.GROK_NATIVE_ISA).isa;
  return (type, x, nIn, rows, dst, weights) => {
    const f = blockFormat(type);
    if (!WEIGHTED_TYPES.has(type) || TS_ONLY_QUANT_TYPES.has(type)) throw new Error(`quantize with an importance matrix: not implemented natively for ${type}`);
    if (!Number.isInteger(nIn) || nIn < 1 || !Number.isInteger(rows) || rows < 0) throw new Error(`quantize: bad shape ${rows}×${nIn}`);
    const rb = rowBytes(f, nIn);
    if (x.length < rows * nIn) throw new Error(`quantize: ${rows}×${nIn} values needed, ${x.length} given`);
    if (dst.length < rows * rb) throw new Error(`quantize: ${type}[${rows}×${nIn}] needs ${rows * rb} bytes, has ${dst.length}`);
    if (weights.length < nIn) throw new Error(`quantize: ${nIn} importance weights needed, ${weights.length} given`);
    addon.quantizeWeighted(f.ggmlId, x, nIn, rows, dst, level, weights);
  };
}

/** grok synth's generator (src/convert/pool-jobs.ts gaussianFill) in C: fills `out` from xorshift128 state `s`. */
export type GaussFill = (out: Float32Array, s: Uint32Array, scale: number) => void;

/** The addon's gaussFill, or undefined where nativeQuantizer() is. */
export function nativeGaussFill(): GaussFill | undefined {
  if (!nativeQuantizer()) return undefined;
  const addon = (loadNativeAddon() as { addon: NativeAddon }).addon;
  return (out, s, scale) => {
    if (s.length !== 4) throw new Error(`gaussFill: the state is 4 words, got ${s.length}`);
    if (!Number.isFinite(scale)) throw new Error(`gaussFill: scale must be finite, got ${scale}`);
    addon.gaussFill(out, s, scale);
  };
}

/** Types nativeDequantizer() reads: exact products, so native and TypeScript values agree bit for bit. */
export const NATIVE_DEQUANT_TYPES: ReadonlySet<BlockType> = new Set(['q8_0', 'f16', 'bf16', 'f32']);

/**
 * The addon's dequantiser for a source of one of NATIVE_DEQUANT_TYPES (out[0 … n) = the values of the first
 * n values at src, as src/quant's dequantisers give them), or undefined where nativeQuantizer() is.
 */
export function nativeDequantizer(): ((type: BlockType, src: Uint8Array, n: number, out: Float32Array) => void) | undefined {
  if (!nativeQuantizer()) return undefined;
  const addon = (loadNativeAddon() as { addon: NativeAddon }).addon;
  return (type, src, n, out) => {
    if (!NATIVE_DEQUANT_TYPES.has(type)) throw new Error(`dequantize: ${type} is not one of ${[...NATIVE_DEQUANT_TYPES].join(', ')}`);
    const f = blockFormat(type);
    if (!Number.isInteger(n) || n < 0) throw new Error(`dequantize: n must be a non-negative integer, got ${n}`);
    const bytes = rowBytes(f, n); // throws unless n is a whole number of blocks
    if (src.length < bytes) throw new Error(`dequantize: ${n} ${type} values need ${bytes} bytes, have ${src.length}`);
    if (out.length < n) throw new Error(`dequantize: out has ${out.length} values, needs ${n}`);
    addon.dequantize(f.ggmlId, src, n, out);
  };
}

/** The checkpoint matrix conversions of src/quant/xai8.ts in C (the same floats and bytes). */
export interface Xai8Native {
  /** xai8Rows: rows r0 … r0+count−1 of Wᵀ into out[(r − r0)·nIn + k]. */
  rows(m: Xai8Matrix, r0: number, count: number, out: Float32Array): void;
  /** xai8RowsToQ8_0 at dst offset 0 (`vals`, when given, left holding the rows): the blocks that kept the checkpoint's levels. */
  q8_0(m: Xai8Matrix, r0: number, count: number, dst: Uint8Array, vals?: Float32Array): number;
  /** The rows quantised into `type` (the quantisers' bytes; with importance `weights` for WEIGHTED_TYPES). */
  quantize(type: BlockType, m: Xai8Matrix, r0: number, count: number, dst: Uint8Array, weights?: Float32Array): void;
}

/** The addon's xai8 conversions, or undefined where nativeQuantizer() is. */
export function nativeXai8(isa?: string): Xai8Native | undefined {
  if (!nativeQuantizer(isa)) return undefined;
  const addon = (loadNativeAddon() as { addon: NativeAddon }).addon;
  const info = addon.info();
  const level = pickIsa(info.best, info.levels, isa ?? process.env.GROK_NATIVE_ISA).isa;
  const check = (m: Xai8Matrix, r0: number, count: number, what: string) => {
    if (!Number.isInteger(r0) || !Number.isInteger(count) || r0 < 0 || count < 0 || r0 + count > m.nOut) throw new Error(`xai8 ${what}: rows ${r0}…${r0 + count - 1} outside 0…${m.nOut - 1}`);
    if (m.groups < 1 || m.nIn % m.groups !== 0) throw new Error(`xai8 ${what}: ${m.groups} scale groups do not divide ${m.nIn} inputs`);
    if (m.q.length < m.nIn * m.nOut || m.scales.length < m.groups * m.nOut) throw new Error(`xai8 ${what}: the matrix arrays are shorter than ${m.nIn}×${m.nOut}`);
  };
  return {
    rows(m, r0, count, out) {
      check(m, r0, count, 'rows');
      if (out.length < count * m.nIn) throw new Error(`xai8 rows: ${count}×${m.nIn} values needed, room for ${out.length}`);
      addon.xai8Rows(m.q, m.scales, m.nIn, m.nOut, m.groups, r0, count, out);
    },
    q8_0(m, r0, count, dst, vals) {
      check(m, r0, count, 'q8_0');
      if (m.nIn % 32 !== 0) throw new Error(`xai8 → q8_0: ${m.nIn} inputs is not a multiple of 32`);
      if (dst.length < count * (m.nIn / 32) * 34) throw new Error(`xai8 → q8_0: ${count} rows need ${count * (m.nIn / 32) * 34} bytes, have ${dst.length}`);
      if (vals && vals.length < count * m.nIn) throw new Error(`xai8 → q8_0: ${count}×${m.nIn} values needed, room for ${vals.length}`);
      return addon.xai8Q8_0(m.q, m.scales, m.nIn, m.nOut, m.groups, r0, count, dst, vals);
    },
    quantize(type, m, r0, count, dst, weights) {
      check(m, r0, count, type);
      const rb = rowBytes(blockFormat(type), m.nIn);
      if (dst.length < count * rb) throw new Error(`xai8 → ${type}: ${count} rows need ${count * rb} bytes, have ${dst.length}`);
      if (TS_ONLY_QUANT_TYPES.has(type)) throw new Error(`xai8 → ${type}: no native quantiser`);
      if (weights && (!WEIGHTED_TYPES.has(type) || weights.length < m.nIn)) throw new Error(`xai8 → ${type}: importance weights need one of ${[...WEIGHTED_TYPES].join(', ')} and ${m.nIn} values`);
      addon.xai8Quantize(m.q, m.scales, m.nIn, m.nOut, m.groups, r0, count, dst, blockFormat(type).ggmlId, level, weights);
    },
  };
}

/**
 * Transparent huge pages for a large buffer before it is first written (madvise MADV_HUGEPAGE where the kernel
 * leaves it to the program): a no-op without the addon.
 */
export function adviseHugePages(view: Uint8Array): void {
  const l = loadNativeAddon();
  if ('addon' in l && view.length >= 4 << 20) l.addon.adviseHugePages(view);
}

let isaNoteShown = false;

/** A 'rows' matrix's bytes cover its shape (nIn a whole number of blocks); its ggml type id. */
function checkRows(w: RowMatrix): number {
  const f = blockFormat(w.type);
  const rb = rowBytes(f, w.nIn); // throws unless nIn is a multiple of the block size
  if (w.data.length < rb * w.nOut) throw new Error(`matmul: ${w.type}[${w.nOut}×${w.nIn}] needs ${rb * w.nOut} bytes, has ${w.data.length}`);
  return f.ggmlId;
}

function checkXai8(w: Xai8Matrix): void {
  const { nIn, nOut, groups } = w;
  if (!Number.isInteger(groups) || groups < 1 || nIn % groups !== 0) throw new Error(`matmul: xai8 groups ${groups} must divide nIn ${nIn}`);
  if (w.q.length < nIn * nOut) throw new Error(`matmul: xai8[${nIn}×${nOut}] needs ${nIn * nOut} weight bytes, has ${w.q.length}`);
  if (w.scales.length < groups * nOut) throw new Error(`matmul: xai8 scales need ${groups}×${nOut} values, have ${w.scales.length}`);
}

/** Largest typed array this runtime makes (4 GiB on Node 20): a longer tensor is read, not mapped. */
const MAX_VIEW = bufferConstants.MAX_LENGTH;

interface Mapping {
  readonly handle: object;
  readonly file: string;
  readonly size: number;
  /** "dev:ino:size:mtimeNs" of the file when mapped (the key of NativeKernels.maps). */
  readonly id: string;
  readonly populate: boolean;
  /** WeightMaps sets holding it (mapWeight's own set included). */
  holders: number;
}

/** The identity the addon gives a mapped file, from a stat of the path. */
function fileId(st: fs.BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
}

/** What changed between two identities, for the error message. */
function describeChange(was: string, now: string): string {
  const [, , size0, t0] = was.split(':');
  const [, , size1, t1] = now.split(':');
  if (size0 !== size1) return `size ${size0} → ${size1} bytes`;
  const when = (t: string | undefined) => new Date(Number(BigInt(t ?? '0') / 1000000n)).toISOString();
  return t0 !== t1 ? `rewritten in place: same size, modified ${when(t1)}, was ${when(t0)}` : `replaced: device or inode differ`;
}

let mlockWarned = false;

/** ggml type ids of the KV cache types (the addon's kv_type). */
const KV_TYPE_IDS: Record<KVType, number> = { f32: 0, f16: 1, q8_0: 8 };

/** The addon's GELU form codes (native/gn.h GN_GELU_TANH, GN_GELU_ERF). */
const GELU_FORMS: Record<GeluForm, number> = { tanh: 0, erf: 1 };

export class NativeKernels implements Kernels {
  readonly name: string;
  readonly mode: KernelMode;
  readonly threads: number;
  readonly isa: string;
  private readonly addon: NativeAddon;
  private ctx: object | null;
  private readonly fast: boolean;
  private readonly mmap: boolean | 'auto';
  private readonly mlock: boolean;
  private readonly advice: number;
  private readonly populate: boolean | 'auto';
  /** Open mappings by file identity. */
  private readonly maps = new Map<string, Mapping>();
  /** mapWeight()'s mappings (held until close()). */
  private readonly own = new Set<Mapping>();
  /** ArrayBuffers that are views of a mapped file (for `isMapped`). */
  private readonly mapped = new WeakSet<ArrayBufferLike>();

  constructor(addon: NativeAddon, opts: NativeKernelOptions = {}) {
    this.addon = addon;
    this.mode = opts.mode ?? 'exact';
    if (this.mode !== 'exact' && this.mode !== 'fast') throw new Error(`kernels: mode must be 'exact' or 'fast', got '${String(this.mode)}'`);
    const threads = opts.threads ?? defaultThreads();
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) throw new Error(`kernels: threads must be an integer in 1…256, got ${threads}`);
    const spin = opts.spinUs ?? 100;
    if (!Number.isInteger(spin) || spin < 0 || spin > 1e6) throw new Error(`kernels: spinUs must be an integer in 0…1000000, got ${spin}`);
    const advice = opts.advice ?? 'normal';
    if (!(advice in ADVICE)) throw new Error(`kernels: advice must be one of ${Object.keys(ADVICE).join(', ')}, got '${String(advice)}'`);
    const info = addon.info();
    const picked = pickIsa(info.best, info.levels, opts.isa ?? process.env.GROK_NATIVE_ISA);
    if (picked.note && !isaNoteShown) {
      isaNoteShown = true;
      console.warn(`grok: ${picked.note}`);
    }
    this.isa = picked.isa;
    this.threads = threads;
    this.fast = this.mode === 'fast';
    this.mmap = opts.mmap ?? 'auto';
    if (this.mmap !== 'auto' && typeof this.mmap !== 'boolean') throw new Error(`kernels: mmap must be true, false or 'auto'`);
    this.mlock = opts.mlock ?? false;
    this.advice = ADVICE[advice];
    this.populate = opts.populate ?? 'auto';
    if (this.populate !== 'auto' && typeof this.populate !== 'boolean') throw new Error(`kernels: populate must be true, false or 'auto'`);
    this.ctx = addon.create(threads, this.isa, spin);
    this.name = `native-${this.isa}-${this.mode}-${threads}t`;
    if (opts.cpuAffinity) this.pin(opts.cpuAffinity);
  }

  private pin(want: true | readonly number[]): void {
    const cpus = want === true ? physicalCoreCpus() : want;
    if (!cpus || cpus.length === 0 || !cpus.every((c) => Number.isInteger(c) && c >= 0 && c < 65536)) {
      throw new Error(`kernels: cpuAffinity needs CPU numbers in 0…65535${want === true ? ' (this system does not say which CPUs are physical cores)' : ''}`);
    }
    const err = this.addon.setAffinity(this.context(), Int32Array.from(cpus));
    if (err !== 0) console.warn(`grok: pinning threads to CPUs ${cpus.join(',')} failed (errno ${err}); continuing unpinned`);
  }

  /**
   * Stop the worker threads and unmap every mapped file now; the object is unusable afterwards (views of
   * mapped weights still held read zeros).
   */
  close(): void {
    if (this.ctx) this.addon.destroy(this.ctx);
    this.ctx = null;
    for (const m of this.maps.values()) this.addon.mapRelease(m.handle);
    this.maps.clear();
    this.own.clear();
  }

  /** File mappings open in this process, all kernel sets together (tests: close() must unmap). */
  liveMappings(): number {
    return this.addon.mapLive();
  }

  private context(): object {
    if (!this.ctx) throw new Error(`${this.name}: kernels were closed`);
    return this.ctx;
  }

  allocWeight(bytes: number): Uint8Array {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new Error(`allocWeight: invalid size ${bytes}`);
    if (bytes > MAX_VIEW) throw new Error(`allocWeight: ${bytes} bytes exceed this runtime's largest array (${MAX_VIEW})`);
    return new Uint8Array(this.addon.alloc(bytes));
  }

  /** mmap 'auto': weights that fit in 60 % of the available memory are read into it, larger models mapped. */
  weightPlacement(modelBytes: number): 'map' | 'copy' {
    if (this.mmap !== 'auto') return this.mmap ? 'map' : 'copy';
    return this.mlock || modelBytes > 0.6 * availableMemory() ? 'map' : 'copy';
  }

  /**
   * The bytes [offset, offset + length) of `file` as a read-only view of a shared mapping (no copy); null
   * when mapping is off or the range is longer than one array may be. A range past the end of the file
   * is a FormatError naming the file. Writing to the view faults: weights are never modified in place.
   * Held until close(); a loaded model holds its own through mapWeights().
   */
  mapWeight(file: string, offset: number, length: number): Uint8Array | null {
    return this.mapInto(this.own, file, offset, length);
  }

  /** A set of mappings for one loaded model: checked before its forward passes, released with it. */
  mapWeights(): WeightMaps {
    const held = new Set<Mapping>();
    let released = false;
    return {
      map: (file, offset, length) => {
        if (released) throw new Error(`mapWeights: ${file}: this set of mappings was released`);
        return this.mapInto(held, file, offset, length);
      },
      check: () => {
        for (const m of held) this.check(m);
      },
      release: () => {
        if (released) return;
        released = true;
        for (const m of held) this.drop(m);
        held.clear();
      },
    };
  }

  /** The mapping of the file `file` names now: the one already open for the same identity, else a new one. */
  private mapping(file: string): Mapping {
    let key: string | undefined;
    try {
      key = fileId(fs.statSync(file, { bigint: true }));
    } catch { /* mapFile says why */ }
    const open = key === undefined ? undefined : this.maps.get(key);
    if (open) return open;
    const [handle, size, id] = this.addon.mapFile(file);
    const same = this.maps.get(id); // replaced between the stat and the open, by a file already mapped
    if (same) {
      this.addon.mapRelease(handle);
      return same;
    }
    const m: Mapping = { handle, file, size, id, holders: 0, populate: this.populate === 'auto' ? size <= 0.8 * availableMemory() : this.populate };
    this.maps.set(id, m);
    return m;
  }

  private mapInto(held: Set<Mapping>, file: string, offset: number, length: number): Uint8Array | null {
    if (this.mmap === false) return null;
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new Error(`mapWeight: invalid range offset ${offset}, length ${length} in ${file}`);
    }
    if (length > MAX_VIEW) return null;
    const m = this.mapping(file);
    if (!held.has(m)) {
      held.add(m);
      m.holders++;
    }
    if (offset + length > m.size) {
      throw new FormatError(file, `truncated: a tensor needs bytes ${offset}…${offset + length} but the file has ${m.size}`);
    }
    this.check(m); // the bytes the header described are still the file's
    const buf = this.addon.mapView(m.handle, offset, length);
    this.mapped.add(buf);
    if (this.advice !== 0) this.addon.mapAdvise(m.handle, offset, length, this.advice);
    if (m.populate) this.addon.mapPopulate(m.handle, offset, length);
    if (this.mlock) {
      const err = this.addon.mapLock(m.handle, offset, length);
      if (err !== 0 && !mlockWarned) {
        mlockWarned = true;
        console.warn(`grok: mlock of mapped weights failed (errno ${err}; raise RLIMIT_MEMLOCK, e.g. ulimit -l unlimited); continuing without`);
      }
    }
    return new Uint8Array(buf);
  }

  /** Throws ModelFileChangedError when m's file is no longer as mapped (one fstat). */
  private check(m: Mapping): void {
    const now = this.addon.mapStat(m.handle);
    if (now === null) throw new Error(`${m.file}: its mapping was released (the model or its kernels were closed)`);
    if (now[1] !== m.id) throw new ModelFileChangedError(m.file, describeChange(m.id, now[1]));
  }

  /** One holder fewer; the last one unmaps the file. */
  private drop(m: Mapping): void {
    if (--m.holders > 0) return;
    this.addon.mapRelease(m.handle);
    if (this.maps.get(m.id) === m) this.maps.delete(m.id);
  }

  /** Whether `view`'s memory is a mapped file (tests: the loader must not copy mapped tensors). */
  isMapped(view: ArrayBufferView): boolean {
    return this.mapped.has(view.buffer);
  }

  /** Reads on `threads` native I/O threads (pread; O_DIRECT where the filesystem allows it): native/io.c. */
  readQueue(threads = 4): ReadQueue {
    return new NativeReadQueue(this.addon, threads);
  }

  matmul(w: Matrix, x: Float32Array, T: number, y: Float32Array): void {
    this.matmulMode(w, x, T, y, this.fast);
  }

  matmulExact(w: Matrix, x: Float32Array, T: number, y: Float32Array): void {
    this.matmulMode(w, x, T, y, false);
  }

  private matmulMode(w: Matrix, x: Float32Array, T: number, y: Float32Array, fast: boolean): void {
    if (!checkMatmul(w, x, T, y)) return;
    if (w.layout === 'rows') this.addon.matmulRows(this.context(), checkRows(w), w.data, w.nIn, w.nOut, x, T, y, fast);
    else {
      checkXai8(w);
      this.addon.matmulXai8(this.context(), w.q, w.scales, w.nIn, w.nOut, w.groups, x, T, y, fast);
    }
  }

  /** One native call: the input quantised once (on the pool's threads), every matrix's rows in one dispatch. */
  matmulMany(ws: readonly Matrix[], x: Float32Array, T: number, ys: readonly Float32Array[]): void {
    checkMatmulMany(ws, x, T, ys);
    if (ws.length === 0 || T === 0) return;
    const MAX = 16; // GN_MANY_MAX
    for (let i0 = 0; i0 < ws.length; i0 += MAX) {
      const mats = ws.slice(i0, i0 + MAX).map((w, j) => {
        const y = ys[i0 + j]!;
        if (w.layout === 'rows') return { type: checkRows(w), w: w.data, nOut: w.nOut, y };
        checkXai8(w);
        return { q: w.q, scales: w.scales, groups: w.groups, nOut: w.nOut, y };
      });
      this.addon.matmulMany(this.context(), mats, ws[0]!.nIn, x, T, this.fast);
    }
  }

  getRow(w: Matrix, r: number, out: Float32Array): void {
    if (!Number.isInteger(r) || r < 0 || r >= w.nOut) throw new Error(`getRow: row ${r} outside 0…${w.nOut - 1}`);
    if (out.length < w.nIn) throw new Error(`getRow: out has ${out.length} values, needs ${w.nIn}`);
    if (w.layout !== 'rows') {
      getRowReference(w, r, out); // an xai8 column: a strided gather once per token
      return;
    }
    const f = blockFormat(w.type);
    const rb = rowBytes(f, w.nIn);
    if (w.data.length < rb * w.nOut) throw new Error(`getRow: ${w.type}[${w.nOut}×${w.nIn}] needs ${rb * w.nOut} bytes, has ${w.data.length}`);
    this.addon.getRow(f.ggmlId, w.data, w.nIn, w.nOut, r, out);
  }

  rmsnorm(x: Float32Array, weight: Float32Array, eps: number, T: number, n: number, out: Float32Array): void {
    rmsnorm(x, weight, eps, T, n, out);
  }

  rope(x: Float32Array, T: number, nHeads: number, headDim: number, positions: Int32Array, base: number): void {
    rope(x, T, nHeads, headDim, positions, base);
  }

  attention(a: AttentionArgs): void {
    const { q, kCache, vCache, keyMask, T, pos0, nHeads, nKV, headDim, scale, softcap, out } = a;
    for (const [name, v] of [['T', T], ['pos0', pos0], ['nHeads', nHeads], ['nKV', nKV], ['headDim', headDim]] as const) {
      if (!Number.isInteger(v) || v < (name === 'T' || name === 'pos0' ? 0 : 1)) throw new Error(`attention: ${name} must be a ${name === 'T' || name === 'pos0' ? 'non-negative' : 'positive'} integer, got ${v}`);
    }
    if (nHeads % nKV !== 0) throw new Error(`attention: ${nHeads} query heads are not a multiple of ${nKV} KV heads`);
    const { kvType, rowElements } = attentionKV(a);
    const qn = T * nHeads * headDim, kvn = (pos0 + T) * nKV * rowElements;
    if (q.length < qn || out.length < qn) throw new Error(`attention: q/out need ${qn} values`);
    if (kCache.length < kvn || vCache.length < kvn) throw new Error(`attention: the KV cache needs ${kvn} elements for ${pos0 + T} positions`);
    if (keyMask.length < pos0 + T) throw new Error(`attention: keyMask needs ${pos0 + T} entries`);
    checkTemperatureLen(a.temperatureLen);
    if (T === 0) return;
    // Fast mode: float32 scores and softmax, key chunks spread over the threads (native/kernels/attention.c).
    this.addon.attention(this.context(), q, kCache, vCache, keyMask, out, T, pos0, nHeads, nKV, headDim, scale, softcap, KV_TYPE_IDS[kvType], this.fast,
      a.temperatureLen ?? 0);
  }

  gelu(x: Float32Array, n: number, up?: Float32Array, form: GeluForm = 'tanh'): void {
    if (!Number.isInteger(n) || n < 0 || n > x.length) throw new Error(`gelu: n = ${n} outside 0…${x.length}`);
    if (up && up.length < n) throw new Error(`gelu: up has ${up.length} values, fewer than n = ${n}`);
    const code = Object.hasOwn(GELU_FORMS, form) ? GELU_FORMS[form] : undefined;
    if (code === undefined) throw new Error(`gelu: form must be 'tanh' or 'erf', got '${String(form)}'`);
    // Fast mode's erf form: float32 lanes, |Δ| ≤ 3e-7·|x| (native/kernels/gelu.c); exact: libm's erf in float64.
    this.addon.gelu(this.context(), x, n, up, code, this.fast);
  }
}

const ECANCELED = os.constants.errno.ECANCELED;

/** ReadQueue on native I/O threads (native/io.c). */
class NativeReadQueue implements ReadQueue {
  readonly alignment = 4096; // GN_IO_ALIGN
  private readonly io: object;
  private readonly files: string[] = [];
  /** Tickets in flight: what a failure message names. */
  private readonly pending = new Map<number, { file: number; offset: number; length: number; cancelled?: boolean }>();
  private closed = false;

  constructor(private readonly addon: NativeAddon, threads: number) {
    if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new Error(`read queue: threads must be an integer in 1…64, got ${threads}`);
    this.io = addon.ioCreate(threads);
  }

  alloc(bytes: number): Uint8Array {
    if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes > MAX_VIEW) throw new Error(`read queue: cannot allocate ${bytes} bytes`);
    return new Uint8Array(this.addon.ioAlloc(this.io, bytes));
  }

  open(file: string): number {
    const [i] = this.addon.ioOpen(this.io, file);
    if (i < 0) throw readError(file, 0, 0, -i, 0);
    this.files[i] = file;
    return i;
  }

  submit(file: number, offset: number, dst: Uint8Array, need: number): number {
    if (this.files[file] === undefined) throw new Error(`read queue: no file ${file}`);
    if (!Number.isSafeInteger(offset) || offset < 0) throw new Error(`read queue: invalid offset ${offset}`);
    if (!Number.isSafeInteger(need) || need < 0 || need > dst.length) throw new Error(`read queue: need ${need} outside 0…${dst.length}`);
    const t = this.addon.ioSubmit(this.io, file, offset, dst.length, need, dst);
    if (t < 0) throw readError(this.files[file]!, offset, dst.length, -t, offset);
    this.pending.set(t, { file, offset, length: dst.length });
    return t;
  }

  wait(ticket: number): void {
    const r = this.pending.get(ticket);
    if (!r) throw new Error(`read queue: ticket ${ticket} is not pending`);
    this.pending.delete(ticket);
    const [err, at] = this.addon.ioWait(this.io, ticket);
    if (err !== 0 && !(err === ECANCELED && r.cancelled)) throw readError(this.files[r.file]!, r.offset, r.length, err, at);
  }

  cancel(ticket: number): void {
    const r = this.pending.get(ticket);
    if (!r) return;
    r.cancelled = true;
    this.addon.ioCancel(this.io, ticket);
  }

  done(ticket: number): boolean {
    return !this.pending.has(ticket) || this.addon.ioDone(this.io, ticket);
  }

  totals(): { bytes: number; directBytes: number; busySeconds: number } {
    const [bytes, directBytes, busySeconds] = this.addon.ioTotals(this.io);
    return { bytes, directBytes, busySeconds };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.addon.ioClose(this.io);
    this.pending.clear();
  }
}
