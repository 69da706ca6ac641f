/** The `--kernels` / `--threads` options shared by the commands that run the model. */
import { createKernels, type Kernels } from '../kernels/index.js';
import { UsageError } from './errors.js';

export const KERNEL_CHOICES = ['exact', 'fast', 'reference'] as const;

/**
 * exact: WebAssembly SIMD with float activations (matches the fixtures at 1e-4; the scalar reference where
 * the runtime lacks SIMD); fast: int8 activations for quantised weights, as llama.cpp does (generation);
 * reference: the plain scalar kernels.
 */
export async function kernelsFromOption(name: string, threads?: string): Promise<Kernels> {
  if (threads !== undefined && !/^[1-9]\d*$/.test(threads)) throw new UsageError(`--threads must be a positive integer, got '${threads}'`);
  const t = threads === undefined ? {} : { threads: Number(threads) };
  switch (name) {
    case 'exact': return createKernels({ mode: 'exact', ...t });
    case 'fast': return createKernels({ mode: 'fast', ...t });
    case 'reference': return createKernels({ kernels: 'reference' });
    default: throw new UsageError(`--kernels must be one of: ${KERNEL_CHOICES.join(', ')}; got '${name}'`);
  }
}
