/**
 * Kernel selection: `createKernels()` returns the native C kernels (src/kernels/native.ts) when the
 * addon was built and loads here, else the WebAssembly SIMD kernels (worker threads) when this runtime
 * can run them (saying once why native is not used), else the scalar reference. Exact f32 numerics by
 * default here (the building block tests and `grok logits` use); the library's loadModel() and the CLI's
 * generate/serve ask for 'fast'.
 *
 *   createKernels()                                  native (else wasm), exact, one thread per physical core
 *   createKernels({ mode: 'fast', threads: 2 })      int8 activations for quantised weights (generation)
 *   createKernels({ kernels: 'reference' })          src/kernels/reference.ts (plain scalar loops)
 *   GROK_BACKEND=native|wasm|reference               forces one for 'auto'
 *
 * `kernels: 'native'` / `'wasm'` demand that backend and throw when it is unavailable.
 */
import { NativeKernels, loadNativeAddon, type MapAdvice } from './native.js';
import { referenceKernels } from './reference.js';
import type { Kernels } from './types.js';
import { kernelModule, WasmKernels, type KernelMode } from './wasm.js';

export type { Kernels } from './types.js';
export { WasmKernels, type KernelMode } from './wasm.js';
export { NativeKernels, nativeInfo, type NativeInfo, type MapAdvice } from './native.js';

export interface CreateKernelsOptions {
  /** 'auto' (default): native when the addon loads, else wasm when supported, else reference. */
  readonly kernels?: 'auto' | 'native' | 'wasm' | 'reference';
  readonly mode?: KernelMode;
  /** Threads including the main thread; default one per physical core this process may use. */
  readonly threads?: number;
  /** Worker spin iterations before sleeping (wasm only). */
  readonly spin?: number;
  /** Weight bytes per WebAssembly memory (wasm only; default ≈ 4 GiB). */
  readonly arenaWeightBytes?: number;
  /** Native only: true maps model files (weights in place), false reads them into memory; 'auto' (default) reads a model that fits, maps one that does not. */
  readonly mmap?: boolean | 'auto';
  /** Native only: mlock mapped weights. */
  readonly mlock?: boolean;
  /** Native only: madvise for mapped weights (default 'normal'). */
  readonly advice?: MapAdvice;
  /** Native only: highest instruction-set level (default GROK_NATIVE_ISA, else the CPU's best). */
  readonly isa?: string;
  /** Native only: pin the threads, one per physical core (true) or to these CPUs (Linux). */
  readonly cpuAffinity?: boolean | readonly number[];
  /** Native only: fill mapped weights' page tables in the background (default 'auto': when the file fits in memory). */
  readonly populate?: boolean | 'auto';
}

let nativeNoticeShown = false;

export function createKernels(opts: CreateKernelsOptions = {}): Kernels {
  let which = opts.kernels ?? 'auto';
  if (which !== 'auto' && which !== 'native' && which !== 'wasm' && which !== 'reference') {
    throw new Error(`createKernels: kernels must be 'auto', 'native', 'wasm' or 'reference', got '${String(which)}'`);
  }
  const forced = process.env.GROK_BACKEND;
  if (which === 'auto' && forced) {
    if (forced !== 'native' && forced !== 'wasm' && forced !== 'reference') throw new Error(`GROK_BACKEND must be native, wasm or reference, got '${forced}'`);
    which = forced;
  }
  if (which === 'reference') return referenceKernels;
  if (which === 'native' || which === 'auto') {
    const native = loadNativeAddon();
    if ('addon' in native) {
      return new NativeKernels(native.addon, { mode: opts.mode, threads: opts.threads, mmap: opts.mmap, mlock: opts.mlock, advice: opts.advice, isa: opts.isa, populate: opts.populate, cpuAffinity: opts.cpuAffinity });
    }
    if (which === 'native') throw new Error(`createKernels: the native kernels are unavailable (${native.error})`);
    if (!nativeNoticeShown) {
      nativeNoticeShown = true;
      console.warn(`grok: native kernels unavailable (${native.error}); using the WebAssembly kernels`);
    }
  }
  const module = kernelModule();
  if (!module) {
    if (which === 'wasm') throw new Error('createKernels: this runtime lacks WebAssembly SIMD128 or shared memory');
    return referenceKernels;
  }
  return new WasmKernels(module, opts);
}

/** Stop a kernel set's worker threads (no-op for the reference). */
export function closeKernels(k: Kernels): void {
  if (k instanceof WasmKernels || k instanceof NativeKernels) k.close();
}
