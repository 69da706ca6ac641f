/** The `--kernels` / `--threads` options shared by the commands that run the model. */
import { referenceKernels } from '../kernels/reference.js';
import type { Kernels } from '../kernels/types.js';
import { UsageError } from './errors.js';

export async function kernelsFromOption(name: string, threads?: string): Promise<Kernels> {
  if (threads !== undefined && !/^[1-9]\d*$/.test(threads)) throw new UsageError(`--threads must be a positive integer, got '${threads}'`);
  switch (name) {
    case 'reference':
    case 'exact':
      return referenceKernels;
    default:
      throw new UsageError(`--kernels must be one of: reference, exact; got '${name}'`);
  }
}
