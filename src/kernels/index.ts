/**
 * Kernel selection: `createKernels()` returns the WebAssembly SIMD kernels (worker threads, exact f32
 * numerics by default) when this runtime can run them, else the scalar reference.
 *
 *   createKernels()                                  wasm SIMD, exact, os.availableParallelism() threads
 *   createKernels({ mode: 'fast', threads: 2 })      int8 activations for quantised weights (generation)
 *   createKernels({ kernels: 'reference' })          src/kernels/reference.ts (plain scalar loops)
 *
 * `kernels: 'wasm'` demands the wasm kernels and throws when they are unavailable.
 */
import { availableParallelism } from 'node:os';
import { referenceKernels } from './reference.js';
import type { Kernels } from './types.js';
import { kernelModule, WasmKernels, type KernelMode } from './wasm.js';

export type { Kernels } from './types.js';
export { WasmKernels, type KernelMode } from './wasm.js';

export interface CreateKernelsOptions {
  /** 'auto' (default): wasm when supported, else reference. */
  readonly kernels?: 'auto' | 'wasm' | 'reference';
  readonly mode?: KernelMode;
  /** Threads including the main thread (wasm only); default os.availableParallelism(). */
  readonly threads?: number;
  /** Worker spin iterations before sleeping (wasm only). */
  readonly spin?: number;
  /** Weight bytes per WebAssembly memory (wasm only; default ≈ 4 GiB). */
  readonly arenaWeightBytes?: number;
}

export function createKernels(opts: CreateKernelsOptions = {}): Kernels {
  const which = opts.kernels ?? 'auto';
  if (which !== 'auto' && which !== 'wasm' && which !== 'reference') {
    throw new Error(`createKernels: kernels must be 'auto', 'wasm' or 'reference', got '${String(which)}'`);
  }
  if (which === 'reference') return referenceKernels;
  const module = kernelModule();
  if (!module) {
    if (which === 'wasm') throw new Error('createKernels: this runtime lacks WebAssembly SIMD128 or shared memory');
    return referenceKernels;
  }
  return new WasmKernels(module, opts);
}

/** Stop a kernel set's worker threads (no-op for the reference). */
export function closeKernels(k: Kernels): void {
  if (k instanceof WasmKernels) k.close();
}

/** What `createKernels()` would use on this machine, for `grok info` and start-up messages. */
export function kernelInfo(): { backend: string; features: string[]; threads: number } {
  const wasm = kernelModule() !== null;
  return {
    backend: wasm ? 'wasm' : 'reference',
    features: wasm ? ['wasm-simd128', 'threads'] : [],
    threads: availableParallelism(),
  };
}
