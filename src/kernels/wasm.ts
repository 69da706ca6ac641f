/**
 * Kernels backed by WebAssembly SIMD128 (assembly/, one file per block type; entry assembly/kernels.ts)
 * and worker threads. Type codes and argument-block slots are declared once, in abi.ts, which the
 * AssemblyScript imports too.
 *
 * Weights live in "arenas": shared WebAssembly memories of at most 4 GiB, each with its own module
 * instance (one per thread). allocWeight bump-allocates in the newest arena and opens a new one when a
 * request does not fit, so a 300 GB model is ~80 arenas; the kernels read the weights in place. Each
 * arena starts with a header the kernels use for their arguments, per-thread scratch and the activations
 * of the current call (copied in and out per call: KBs per token). Untouched header pages are only
 * virtual reservations, so an arena costs resident memory only for the weights in it.
 *
 * Batch invariance: every output value is accumulated in one fixed order whatever T, the token's place in
 * the batch and the thread split (rows are split between threads, never the sum of one output), so a
 * token's row is bit-identical alone or batched — the engine's "generated alongside others gives exactly
 * its solo tokens" rests on it (test/kernels-invariance.test.ts, test/engine-wasm.test.ts).
 *
 * Layout of an arena:  [0, 64 KiB) the module's static data and the argument block (WASM_ARG_BLOCK) ·
 * slots × 1 MiB thread scratch · 96 MiB activations · weights (64-byte aligned).
 */
import { readFileSync } from 'node:fs';
import { blockFormat, rowBytes, type BlockType } from '../quant/index.js';
import type { Matrix, RowMatrix, Xai8Matrix } from '../quant/matrix.js';
import {
  ATTN_HEAD_DIM, ATTN_K, ATTN_MASK, ATTN_N_HEADS, ATTN_N_KV, ATTN_OUT, ATTN_POS0, ATTN_Q, ATTN_SCALE, ATTN_SOFTCAP, ATTN_TEMP_LEN, ATTN_V,
  MM_N_IN, MM_N_OUT, MM_ROW_BYTES, MM_T, MM_TYPE, MM_W, MM_X, MM_XQ8, MM_XS, MM_XSUM, MM_Y,
  TYPE_BF16, TYPE_F16, TYPE_F32, TYPE_Q4_0, TYPE_Q4_K, TYPE_Q6_K, TYPE_Q8_0, WASM_ARG_BLOCK,
  XAI8_GROUPS, XAI8_N_IN, XAI8_N_OUT, XAI8_Q, XAI8_SCALES, XAI8_T, XAI8_X, XAI8_XS, XAI8_Y,
} from './abi.js';
import { defaultThreads } from './cpus.js';
import { checkMatmul, checkMatmulMany, getRowReference, matmulReference } from './reference.js';
import { WorkerPool, type WorkerPoolOptions } from './pool.js';
import type { ChunkFn } from './pool-protocol.js';
import { readKVRows } from './kv.js';
import { attention, checkAttentionArgs, gelu, rmsnorm, rope } from './small-ops.js';
import type { AttentionArgs, GeluForm, Kernels } from './types.js';

export type KernelMode = 'exact' | 'fast';

export interface WasmKernelOptions {
  /** 'exact': f32 activations and sums (matches the fixtures); 'fast': int8 activations for quantised weights. */
  readonly mode?: KernelMode;
  /** Threads including the main thread; default one per physical core (src/kernels/cpus.ts). */
  readonly threads?: number;
  /** Spin iterations a worker polls before sleeping (default 20000 ≈ tens of µs). */
  readonly spin?: number;
  /**
   * Weight bytes per memory before a new one is opened (default: the 4 GiB limit less the header). Smaller
   * values exercise the several-memories paths in tests.
   */
  readonly arenaWeightBytes?: number;
  /** Worker pool details (tests): the worker script, and how long a start or a stalled job may take. */
  readonly pool?: Pick<WorkerPoolOptions, 'workerUrl' | 'startupMs' | 'stallMs'>;
}

/** The block types with wasm kernels, and their codes (abi.ts: ggml type ids). */
const TYPE_CODES: Partial<Record<BlockType, number>> = {
  f32: TYPE_F32, f16: TYPE_F16, bf16: TYPE_BF16, q8_0: TYPE_Q8_0, q4_0: TYPE_Q4_0, q4_k: TYPE_Q4_K, q6_k: TYPE_Q6_K,
};
/** Types whose fast mode uses int8 activations (the others are float weights: exact path). */
const INT_TYPES = new Set(['q8_0', 'q4_0', 'q4_k', 'q6_k']);

const PAGE = 65536;
const MAX_PAGES = 65536;
const SCRATCH_BASE = PAGE;
const SCRATCH_BYTES = 1 << 20;
/** Activations of one call; also a whole 8192-position KV cache slice of Grok-1 (2 × 32 MiB) for attention. */
const ACT_BYTES = 96 << 20;
/** Largest nIn the per-thread scratch holds (f32 row + i16 row + per-block scales). */
const MAX_NIN = Math.floor(SCRATCH_BYTES / 6.25) & ~255;
/** Below this many multiply-adds a call runs on the main thread alone (a barrier costs ~10–15 µs). */
const MIN_PARALLEL_MACS = 1 << 17;

type ChunkExport = (args: number, r0: number, r1: number, scratch: number) => void;
interface KernelExports {
  mmExact: ChunkExport;
  mmFast: ChunkExport;
  mmXai8: ChunkExport;
  mmXai8Fast: ChunkExport;
  attnChunk: ChunkExport;
  quantizeX(x: number, T: number, n: number, xq: number, xs: number, xsum: number, xq8: number): void;
  getRow(type: number, w: number, rowBytes: number, n: number, r: number, dst: number, tmp: number): void;
}

let cachedModule: WebAssembly.Module | null | undefined;

/** The compiled kernel module, or null when this runtime cannot run it (no SIMD, no shared memory). */
export function kernelModule(): WebAssembly.Module | null {
  if (cachedModule !== undefined) return cachedModule;
  cachedModule = null;
  if (typeof SharedArrayBuffer === 'undefined') return null;
  const bytes = wasmBytes();
  if (!WebAssembly.validate(bytes)) return null; // SIMD128 or threads unsupported: caller falls back
  cachedModule = new WebAssembly.Module(bytes);
  return cachedModule;
}

function wasmBytes(): Uint8Array {
  // dist/src/kernels/wasm.js → dist/kernels.wasm (written by `npm run build`).
  const url = new URL('../../kernels.wasm', import.meta.url);
  try {
    // Synchronous on purpose: createKernels is synchronous like the rest of the Kernels API.
    return new Uint8Array(readFileSync(url));
  } catch (e) {
    throw new Error(`kernels: cannot read ${url.pathname} (${(e as Error).message}); run \`npm run build\``);
  }
}

class Arena {
  readonly exports: KernelExports;
  /** Bytes in use (header included). */
  used: number;
  f32: Float32Array;
  i32: Int32Array;
  constructor(readonly index: number, readonly memory: WebAssembly.Memory, module: WebAssembly.Module, readonly weightBase: number, readonly capacity: number) {
    this.exports = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
    this.used = weightBase;
    this.f32 = new Float32Array(memory.buffer, 0, weightBase / 4);
    this.i32 = new Int32Array(memory.buffer, 0, weightBase / 4);
  }

  /** Argument-block slot `slot` (a byte offset from abi.ts) := an i32/u32 value. */
  setArg(slot: number, v: number): void {
    this.i32[(WASM_ARG_BLOCK + slot) >> 2] = v;
  }

  /** Argument-block slot `slot` := an f32 value. */
  setArgF32(slot: number, v: number): void {
    this.f32[(WASM_ARG_BLOCK + slot) >> 2] = v;
  }
}

export class WasmKernels implements Kernels {
  readonly name: string;
  readonly mode: KernelMode;
  readonly threads: number;
  private readonly module: WebAssembly.Module;
  private readonly arenas: Arena[] = [];
  private readonly byBuffer = new WeakMap<ArrayBufferLike, Arena>();
  /** Matrices whose bytes were not allocated here: copied once into an arena on first use. */
  private readonly adopted = new WeakMap<object, Uint8Array>();
  private readonly pool: WorkerPool | null;
  private readonly actBase: number;
  private readonly weightBase: number;
  private readonly arenaCapacity: number;

  constructor(module: WebAssembly.Module, opts: WasmKernelOptions = {}) {
    this.module = module;
    this.mode = opts.mode ?? 'exact';
    if (this.mode !== 'exact' && this.mode !== 'fast') throw new Error(`kernels: mode must be 'exact' or 'fast', got '${String(this.mode)}'`);
    const threads = opts.threads ?? defaultThreads();
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) throw new Error(`kernels: threads must be an integer in 1…256, got ${threads}`);
    this.threads = threads;
    this.actBase = SCRATCH_BASE + threads * SCRATCH_BYTES;
    this.weightBase = this.actBase + ACT_BYTES;
    const room = MAX_PAGES * PAGE - this.weightBase;
    const per = opts.arenaWeightBytes ?? room;
    if (!Number.isSafeInteger(per) || per < 1 || per > room) throw new Error(`kernels: arenaWeightBytes must be in 1…${room}, got ${per}`);
    this.arenaCapacity = this.weightBase + per;
    this.name = `wasm-simd-${this.mode}-${threads}t`;
    this.pool = threads > 1 ? new WorkerPool(module, threads - 1, { spin: opts.spin ?? 20000, scratchBase: SCRATCH_BASE, scratchBytes: SCRATCH_BYTES, ...opts.pool }) : null;
    this.newArena();
  }

  private warm: Promise<void> | undefined;

  /**
   * Resolves once the worker threads run and every kernel has been warmed up (rejects with a worker's own
   * error when one cannot start). Not awaiting it is allowed: the first calls are then slower, and a worker
   * that cannot start is reported by the pool's time-out instead.
   */
  ready(): Promise<void> {
    this.warm ??= (this.pool?.ready() ?? Promise.resolve()).then(() => this.warmUp());
    return this.warm;
  }

  /** Stop the worker threads; the object is unusable afterwards. */
  close(): void {
    this.pool?.close();
  }

  /** Number of 4 GiB weight memories in use and the bytes allocated in them (headers excluded). */
  memoryStats(): { arenas: number; weightBytes: number } {
    return { arenas: this.arenas.length, weightBytes: this.arenas.reduce((s, a) => s + a.used - a.weightBase, 0) };
  }

  private newArena(): Arena {
    const initial = this.weightBase / PAGE;
    const memory = new WebAssembly.Memory({ initial, maximum: MAX_PAGES, shared: true });
    const arena = new Arena(this.arenas.length, memory, this.module, this.weightBase, this.arenaCapacity);
    this.arenas.push(arena);
    this.byBuffer.set(memory.buffer, arena);
    this.pool?.addArena(arena.index, memory);
    return arena;
  }

  allocWeight(bytes: number): Uint8Array {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new Error(`allocWeight: invalid size ${bytes}`);
    const room = this.arenaCapacity - this.weightBase;
    if (bytes > room) throw new Error(`allocWeight: ${bytes} bytes do not fit one WebAssembly memory (at most ${room} bytes per tensor)`);
    let arena = this.arenas[this.arenas.length - 1]!;
    if (arena.used + bytes > arena.capacity) arena = this.newArena();
    const off = arena.used;
    const end = off + bytes;
    const have = arena.memory.buffer.byteLength;
    if (end > have) arena.memory.grow(Math.ceil((end - have) / PAGE));
    arena.used = Math.min(arena.capacity, Math.ceil(end / 64) * 64);
    const buf = arena.memory.buffer;
    this.byBuffer.set(buf, arena);
    return new Uint8Array(buf, off, bytes);
  }

  /** The arena holding `view` and the view's offset in it, copying foreign bytes in once if needed. */
  private locate(view: Uint8Array | Int8Array | Uint16Array, owner: object): { arena: Arena; off: number } {
    const arena = this.byBuffer.get(view.buffer);
    if (arena) return { arena, off: view.byteOffset };
    let copy = this.adopted.get(owner);
    if (!copy) {
      copy = this.allocWeight(view.byteLength);
      copy.set(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
      this.adopted.set(owner, copy);
    }
    return { arena: this.byBuffer.get(copy.buffer)!, off: copy.byteOffset };
  }

  matmul(w: Matrix, x: Float32Array, T: number, y: Float32Array): void {
    if (!checkMatmul(w, x, T, y)) return;
    if (w.layout === 'rows') this.matmulRows(w, x, T, y, this.mode === 'fast');
    else this.matmulXai8(w, x, T, y, this.mode === 'fast');
  }

  matmulExact(w: Matrix, x: Float32Array, T: number, y: Float32Array): void {
    if (!checkMatmul(w, x, T, y)) return;
    if (w.layout === 'rows') this.matmulRows(w, x, T, y, false);
    else this.matmulXai8(w, x, T, y, false);
  }

  /** One matmul per matrix: quantising a chunk's activations in wasm costs little beside copying them in. */
  matmulMany(ws: readonly Matrix[], x: Float32Array, T: number, ys: readonly Float32Array[]): void {
    checkMatmulMany(ws, x, T, ys);
    ws.forEach((w, i) => this.matmul(w, x, T, ys[i]!));
  }

  private matmulRows(w: RowMatrix, x: Float32Array, T: number, y: Float32Array, fastMode: boolean): void {
    const code = TYPE_CODES[w.type];
    const { nIn, nOut } = w;
    if (code === undefined || nIn > MAX_NIN) {
      // Block types without a wasm kernel (q4_1, q5_*, q2_k, q3_k, q5_k, the i-quants) and rows longer than the
      // kernels' limit still work, through the scalar reference (row by row, so batch-invariant too).
      matmulReference(w, x, T, y);
      return;
    }
    const rb = rowBytes(blockFormat(w.type), nIn);
    if (w.data.length < rb * nOut) throw new Error(`matmul: ${w.type}[${nOut}×${nIn}] needs ${rb * nOut} bytes, has ${w.data.length}`);
    const { arena, off } = this.locate(w.data, w);
    const fast = fastMode && INT_TYPES.has(w.type);
    const nb = nIn / 32;
    // Activation area: x f32 [T][nIn] · y f32 [T][nOut] · (fast) xq i16 [T][nIn] · xs f32 [T][nb] · xsum i32 [T][nb] · xq8 i8 [T][nIn]
    const perToken = 4 * nIn + 4 * nOut + (fast ? 3 * nIn + 8 * nb : 0);
    const tMax = Math.floor(ACT_BYTES / perToken);
    if (tMax < 1) throw new Error(`matmul: one token of ${nIn}→${nOut} does not fit the ${ACT_BYTES}-byte activation area`);
    for (let t0 = 0; t0 < T; t0 += tMax) {
      const tn = Math.min(tMax, T - t0);
      const xOff = this.actBase;
      const yOff = xOff + 4 * tn * nIn;
      arena.f32.set(x.subarray(t0 * nIn, (t0 + tn) * nIn), xOff / 4);
      arena.setArg(MM_TYPE, code);
      arena.setArg(MM_W, off);
      arena.setArg(MM_ROW_BYTES, rb);
      arena.setArg(MM_N_IN, nIn);
      arena.setArg(MM_T, tn);
      arena.setArg(MM_Y, yOff);
      arena.setArg(MM_N_OUT, nOut);
      let fn: ChunkFn = 'mmExact';
      if (fast) {
        const xq = yOff + 4 * tn * nOut;
        const xs = xq + 2 * tn * nIn;
        const xsum = xs + 4 * tn * nb;
        const xq8 = xsum + 4 * tn * nb;
        arena.exports.quantizeX(xOff, tn, nIn, xq, xs, xsum, xq8);
        arena.setArg(MM_X, xq);
        arena.setArg(MM_XS, xs);
        arena.setArg(MM_XSUM, xsum);
        arena.setArg(MM_XQ8, xq8);
        fn = 'mmFast';
      } else {
        arena.setArg(MM_X, xOff);
      }
      this.runChunks(arena, fn, nOut, nIn * tn, 1);
      y.set(arena.f32.subarray(yOff / 4, yOff / 4 + tn * nOut), t0 * nOut);
    }
  }

  private matmulXai8(w: Xai8Matrix, x: Float32Array, T: number, y: Float32Array, fastMode: boolean): void {
    const { nIn, nOut, groups } = w;
    if (!(groups > 0) || nIn % groups !== 0) throw new Error(`matmul: xai8 groups ${groups} must divide nIn ${nIn}`);
    if (w.q.length < nIn * nOut) throw new Error(`matmul: xai8[${nIn}×${nOut}] needs ${nIn * nOut} weight bytes, has ${w.q.length}`);
    if (w.scales.length < groups * nOut) throw new Error(`matmul: xai8 scales need ${groups}×${nOut} values, have ${w.scales.length}`);
    const { arena, off: qOff } = this.locate(w.q, w.q);
    const scaleBytes = 2 * groups * nOut;
    // Scales that landed in another arena (the q block filled this one) are copied next to the activations per call.
    const sLoc = this.byBuffer.get(w.scales.buffer);
    // Fast mode needs whole 32-input activation blocks inside each scale group (all Grok-1 matrices).
    const fast = fastMode && (nIn / groups) % 32 === 0;
    const nb = Math.ceil(nIn / 32);
    // x and y, then the fast path's int16/int8 activation areas; scales kept in another arena are copied
    // after those areas (sOff below), so the areas are counted in every mode.
    const perToken = 4 * nIn + 4 * nOut + 3 * nIn + 8 * nb;
    const tMax = Math.floor((ACT_BYTES - scaleBytes - 64) / perToken);
    if (tMax < 1) throw new Error(`matmul: one token of xai8 ${nIn}→${nOut} does not fit the activation area`);
    for (let t0 = 0; t0 < T; t0 += tMax) {
      const tn = Math.min(tMax, T - t0);
      const xOff = this.actBase;
      const yOff = xOff + 4 * tn * nIn;
      const xq = yOff + 4 * tn * nOut;
      const xs = xq + 2 * tn * nIn;
      const xsum = xs + 4 * tn * nb;
      const xq8 = xsum + 4 * tn * nb;
      let sOff: number;
      if (sLoc === arena) sOff = w.scales.byteOffset;
      else {
        sOff = Math.ceil((xq8 + tn * nIn) / 64) * 64;
        new Uint16Array(arena.memory.buffer, sOff, groups * nOut).set(w.scales.subarray(0, groups * nOut));
      }
      arena.f32.set(x.subarray(t0 * nIn, (t0 + tn) * nIn), xOff / 4);
      arena.setArg(XAI8_Q, qOff);
      arena.setArg(XAI8_SCALES, sOff);
      arena.setArg(XAI8_N_IN, nIn);
      arena.setArg(XAI8_N_OUT, nOut);
      arena.setArg(XAI8_GROUPS, groups);
      arena.setArg(XAI8_T, tn);
      arena.setArg(XAI8_Y, yOff);
      if (fast) {
        arena.exports.quantizeX(xOff, tn, nIn, xq, xs, xsum, xq8);
        arena.setArg(XAI8_X, xq);
        arena.setArg(XAI8_XS, xs);
      } else {
        arena.setArg(XAI8_X, xOff);
      }
      this.runChunks(arena, fast ? 'mmXai8Fast' : 'mmXai8', nOut, nIn * tn, 32);
      y.set(arena.f32.subarray(yOff / 4, yOff / 4 + tn * nOut), t0 * nOut);
    }
  }

  /** Run a chunked export over `total` output rows/columns; `unit` = chunk granularity. */
  private runChunks(arena: Arena, fn: ChunkFn, total: number, macsPerRow: number, unit: number): void {
    const ex = arena.exports[fn];
    if (!this.pool || total * macsPerRow < MIN_PARALLEL_MACS) {
      ex(WASM_ARG_BLOCK, 0, total, SCRATCH_BASE);
      return;
    }
    // ~8 chunks per thread for balance, but at least 16k multiply-adds each.
    let chunk = Math.max(Math.ceil(total / (this.threads * 8)), Math.ceil(16384 / macsPerRow));
    chunk = Math.ceil(chunk / unit) * unit;
    if (chunk >= total) {
      ex(WASM_ARG_BLOCK, 0, total, SCRATCH_BASE);
      return;
    }
    this.pool.run(arena.index, fn, ex, WASM_ARG_BLOCK, total, chunk, SCRATCH_BASE);
  }

  getRow(w: Matrix, r: number, out: Float32Array): void {
    if (!Number.isInteger(r) || r < 0 || r >= w.nOut) throw new Error(`getRow: row ${r} outside 0…${w.nOut - 1}`);
    if (out.length < w.nIn) throw new Error(`getRow: out has ${out.length} values, needs ${w.nIn}`);
    if (w.layout !== 'rows' || TYPE_CODES[w.type] === undefined || w.nIn > MAX_NIN) {
      getRowReference(w, r, out); // xai8 column gather or a type without a wasm decoder: once per token, cheap
      return;
    }
    const rb = rowBytes(blockFormat(w.type), w.nIn);
    const { arena, off } = this.locate(w.data, w);
    const dst = this.actBase;
    arena.exports.getRow(TYPE_CODES[w.type]!, off, rb, w.nIn, r, dst, dst + 4 * w.nIn);
    out.set(arena.f32.subarray(dst / 4, dst / 4 + w.nIn));
  }

  rmsnorm(x: Float32Array, weight: Float32Array, eps: number, T: number, n: number, out: Float32Array): void {
    rmsnorm(x, weight, eps, T, n, out);
  }

  rope(x: Float32Array, T: number, nHeads: number, headDim: number, positions: Int32Array, base: number): void {
    rope(x, T, nHeads, headDim, positions, base);
  }

  /**
   * Attention in wasm on all threads (one item per token and KV head), over a copy of the cache slice in
   * use (2·nKV/nHeads bytes copied per multiply-add, cheap beside the dots). Queries go in chunks that fit
   * the activation area; a query goes to the plain-JS version (small-ops.ts, float64 sums) only when it
   * does not fit alone — a property of its position, never of T, so a query's result does not depend on
   * how many queries share the call (batch invariance). Arguments outside the contract throw
   * (checkAttentionArgs) before anything is copied.
   */
  attention(args: AttentionArgs): void {
    checkAttentionArgs(args);
    const { q, out, T, pos0, nHeads, nKV, headDim: K } = args;
    if (T === 0) return;
    // The kernel reads L from an f32 slot: a length float32 cannot hold (never a config's integer length) stays
    // exact on the plain-JS path instead of moving the p > L boundary or log2(L).
    const L = args.temperatureLen ?? 0;
    if (Math.fround(L) !== L) { attention(args); return; }
    const perQ = nHeads * K;
    // Bytes for queries [t0, t1): q and out of each query, the K/V slice up to the last one's keys, the mask.
    const bytes = (t0: number, t1: number): number => 8 * (t1 - t0) * perQ + 8 * (pos0 + t1) * nKV * K + (pos0 + t1) + 256;
    const fitsAlone = (t: number): boolean => bytes(t, t + 1) <= ACT_BYTES && 4 * (pos0 + t + 1) * (nHeads / nKV) <= SCRATCH_BYTES;
    let t0 = 0;
    while (t0 < T) {
      if (!fitsAlone(t0)) {
        // Later queries see more keys: none of them fits either.
        attention({ ...args, q: q.subarray(t0 * perQ), out: out.subarray(t0 * perQ), T: T - t0, pos0: pos0 + t0 });
        return;
      }
      let t1 = t0 + 1;
      while (t1 < T && bytes(t0, t1 + 1) <= ACT_BYTES && 4 * (pos0 + t1 + 1) * (nHeads / nKV) <= SCRATCH_BYTES) t1++;
      this.attentionWasm(args, t0, t1);
      t0 = t1;
    }
  }

  /** Queries [t0, t1) of `args` in wasm (they fit the activation area). */
  private attentionWasm(args: AttentionArgs, t0: number, t1: number): void {
    const { q, kCache, vCache, keyMask, pos0, nHeads, nKV, headDim: K, out } = args;
    const tn = t1 - t0;
    const perQ = nHeads * K;
    const nKeys = pos0 + t1;
    const qn = tn * perQ;
    const kvn = nKeys * nKV * K;
    const arena = this.arenas[0]!;
    const base = this.actBase;
    const qOff = base, kOff = qOff + 4 * qn, vOff = kOff + 4 * kvn, oOff = vOff + 4 * kvn, mOff = oOff + 4 * qn;
    const f = arena.f32;
    f.set(q.subarray(t0 * perQ, t1 * perQ), qOff / 4);
    // f16 / q8_0 caches are widened to float32 as they are copied in (the wasm kernel reads float32).
    const kvType = args.kvType ?? 'f32';
    readKVRows(kvType, kCache, 0, nKeys * nKV, K, f.subarray(kOff / 4, kOff / 4 + kvn));
    readKVRows(kvType, vCache, 0, nKeys * nKV, K, f.subarray(vOff / 4, vOff / 4 + kvn));
    new Uint8Array(arena.memory.buffer, mOff, nKeys).set(keyMask.subarray(0, nKeys));
    arena.setArg(ATTN_Q, qOff);
    arena.setArg(ATTN_K, kOff);
    arena.setArg(ATTN_V, vOff);
    arena.setArg(ATTN_MASK, mOff);
    arena.setArg(ATTN_OUT, oOff);
    arena.setArg(ATTN_POS0, pos0 + t0);
    arena.setArg(ATTN_N_HEADS, nHeads);
    arena.setArg(ATTN_N_KV, nKV);
    arena.setArg(ATTN_HEAD_DIM, K);
    arena.setArgF32(ATTN_SCALE, args.scale);
    arena.setArgF32(ATTN_SOFTCAP, args.softcap);
    arena.setArgF32(ATTN_TEMP_LEN, args.temperatureLen ?? 0); // a float32 value (attention checked)
    this.runChunks(arena, 'attnChunk', tn * nKV, 2 * nKeys * K * (nHeads / nKV), 1);
    out.set(f.subarray(oOff / 4, oOff / 4 + qn), t0 * perQ);
  }

  gelu(x: Float32Array, n: number, up?: Float32Array, form?: GeluForm): void {
    gelu(x, n, up, form);
  }

  /** Run every kernel once on small inputs so V8 tiers them up before real work (formats of all types). */
  private warmUp(): void {
    const nIn = 256;
    const nOut = 1024; // big enough to go through the workers too
    const x = new Float32Array(5 * nIn).map((_, i) => Math.sin(i));
    const y = new Float32Array(5 * nOut);
    for (const type of Object.keys(TYPE_CODES) as BlockType[]) {
      const f = blockFormat(type);
      const data = new Uint8Array(rowBytes(f, nIn) * nOut); // zeros: valid blocks of every type
      const m: RowMatrix = { layout: 'rows', type, nIn, nOut, data };
      for (const T of [1, 4, 5]) this.matmul(m, x, T, y);
      this.getRow(m, 0, y);
    }
    const xq: Xai8Matrix = { layout: 'xai8', nIn, nOut, groups: 2, q: new Int8Array(nIn * nOut), scales: new Uint16Array(2 * nOut) };
    for (const T of [1, 2]) this.matmul(xq, x, T, y);
  }
}
