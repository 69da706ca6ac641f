/**
 * Will the model fit? Said once, before any weight is read: the bytes the weights need against the memory
 * this process can use (MemAvailable, or a cgroup's limit when lower), and whether the kernels map the
 * file (then a model larger than RAM still runs, paged from disk by the OS) or must copy it into memory.
 */
import fs from 'node:fs';
import os from 'node:os';

export interface MemoryPlan {
  readonly modelBytes: number;
  /** Memory available to this process (bytes). */
  readonly availableBytes: number;
  /** The kernels read the file in place (mmap) rather than copying it into memory. */
  readonly mapped: boolean;
  readonly verdict: 'fits' | 'pages' | 'too-large';
  readonly message: string;
}

function readNumber(file: string): number | undefined {
  try {
    const t = fs.readFileSync(file, 'utf8').trim();
    const n = Number(t);
    return t === 'max' || !Number.isFinite(n) ? undefined : n;
  } catch {
    return undefined;
  }
}

/** MemAvailable from /proc/meminfo (free RAM plus reclaimable cache), else os.freemem(); lowered by a cgroup limit. */
export function availableMemory(): number {
  let avail = os.freemem();
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
    if (m) avail = Number(m[1]) * 1024;
  } catch { /* not Linux */ }
  // cgroup v2, then v1: a container's limit less what it already uses.
  const limit = readNumber('/sys/fs/cgroup/memory.max') ?? readNumber('/sys/fs/cgroup/memory/memory.limit_in_bytes');
  const used = readNumber('/sys/fs/cgroup/memory.current') ?? readNumber('/sys/fs/cgroup/memory/memory.usage_in_bytes') ?? 0;
  if (limit !== undefined && limit < 2 ** 60) avail = Math.min(avail, Math.max(0, limit - used));
  return avail;
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;

export function memoryPlan(modelBytes: number, mapped: boolean, availableBytes = availableMemory()): MemoryPlan {
  const head = `the weights need ${gib(modelBytes)}; ${gib(availableBytes)} of memory is available`;
  // Activations, KV cache and the runtime need room beside the weights.
  const fits = modelBytes * 1.1 + 512 * 2 ** 20 <= availableBytes;
  if (fits) return { modelBytes, availableBytes, mapped, verdict: 'fits', message: `${head}: it fits in memory` };
  if (mapped) {
    return { modelBytes, availableBytes, mapped, verdict: 'pages', message: `${head}: the file is mapped, so it runs, but the part that does not fit is read from disk again at every token (slow; --mlock cannot help)` };
  }
  return { modelBytes, availableBytes, mapped, verdict: 'too-large', message: `${head}: these kernels copy the weights into memory, so loading will fail; use the native backend (mapped weights) or a smaller quantisation` };
}
