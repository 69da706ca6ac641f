/**
 * Will the model fit? Said once, before any weight is read: the bytes the weights need against the memory
 * this process can use (MemAvailable, or its own cgroup's room when lower: src/base/memory.ts), and whether
 * the kernels map the file (then a model larger than RAM still runs, paged from disk by the OS) or copy it
 * into memory (then it must fit: the loader refuses a copy that cannot, before reading a byte).
 */
import { memoryAvailability, type MemoryAvailability } from '../base/memory.js';

export { availableMemory, cgroupLimit, memoryAvailability, type CgroupLimit, type MemoryAvailability } from '../base/memory.js';

export interface MemoryPlan {
  readonly modelBytes: number;
  /** Memory available to this process (bytes): MemAvailable, or its cgroup's room when lower. */
  readonly availableBytes: number;
  /** The kernels read the file in place (mmap) rather than copying it into memory. */
  readonly mapped: boolean;
  readonly verdict: 'fits' | 'pages' | 'too-large';
  readonly message: string;
  /** Set when the experts are streamed from disk into a pool of slots (a RAM budget below the model's size). */
  readonly streaming?: StreamingPlan;
}

export interface StreamingPlan {
  readonly budgetBytes: number;
  /** Weights kept in memory: embedding, attention, norms, routers, output. */
  readonly residentBytes: number;
  readonly expertBytes: number;
  readonly experts: number;
  readonly slots: number;
  readonly slotBytes: number;
  /** Sequential read rate measured on the model's file before loading (bytes/s), or null when not measured. */
  readonly readBytesPerSecond: number | null;
  /** Bytes a decoded token reads from disk when experts are chosen uniformly at random: the experts it uses × the share not resident. */
  readonly bytesPerToken: number;
  /** readBytesPerSecond / bytesPerToken: the disk's ceiling on decode speed (compute not counted). */
  readonly ceilingTokensPerSecond: number | null;
}

/**
 * The plan for streamed experts: resident weights plus the slot pool against the memory available (the
 * budget must fit in it), and the line a user sizes the budget with.
 */
export function streamingPlan(s: StreamingPlan, available: number | MemoryAvailability = memoryAvailability()): MemoryPlan {
  const a: MemoryAvailability = typeof available === 'number' ? { bytes: available, memAvailableBytes: available } : available;
  const pool = s.slots * s.slotBytes;
  const modelBytes = s.residentBytes + s.expertBytes;
  const share = s.slots / s.experts;
  const rate = s.readBytesPerSecond === null ? '' : `; the disk reads ${(s.readBytesPerSecond / 1e9).toFixed(2)} GB/s, so decoding is bounded by ≈ ${s.ceilingTokensPerSecond!.toFixed(2)} tokens/s (${gib(s.bytesPerToken)} read per token with experts chosen at random; compute not counted)`;
  const head = `the weights need ${gib(modelBytes)}, the RAM budget is ${gib(s.budgetBytes)}: ${gib(s.residentBytes)} stay in memory and ${s.slots} of ${s.experts} experts (${(100 * share).toFixed(0)} %) are held in a pool of ${gib(pool)}, the rest read from disk when chosen${rate}`;
  const need = s.residentBytes + pool;
  if (need * 1.05 + 512 * 2 ** 20 > a.bytes) {
    return { modelBytes, availableBytes: a.bytes, mapped: false, verdict: 'too-large', streaming: s, message: `${head}; but only ${gib(a.bytes)} of memory is available${whence(a)}: give a smaller --ram-budget` };
  }
  return { modelBytes, availableBytes: a.bytes, mapped: false, verdict: 'pages', streaming: s, message: head };
}

/** 318.0 GiB, 250.0 MiB, 96.0 KiB: one decimal in the largest unit that keeps the number at least 1. */
export function gib(b: number): string {
  const [unit, scale] = b >= 2 ** 30 ? ['GiB', 2 ** 30] : b >= 2 ** 20 ? ['MiB', 2 ** 20] : ['KiB', 2 ** 10];
  return `${(b / scale).toFixed(1)} ${unit}`;
}

/** Where the available figure comes from, when a cgroup limit sets it. */
function whence(a: MemoryAvailability): string {
  const c = a.cgroup;
  if (!c || c.roomBytes > a.memAvailableBytes) return '';
  return ` (cgroup v${c.version} ${c.cgroup}: limit ${gib(c.limitBytes)}, ${gib(c.usageBytes)} in use)`;
}

/**
 * The verdict for `modelBytes` of weights, mapped (page cache: evictable, re-read from disk) or copied
 * (anonymous memory: must fit, or the process is killed). `available`: bytes, or a measured availability
 * (default: this process's, cgroup included).
 */
export function memoryPlan(modelBytes: number, mapped: boolean, available: number | MemoryAvailability = memoryAvailability()): MemoryPlan {
  const a: MemoryAvailability = typeof available === 'number' ? { bytes: available, memAvailableBytes: available } : available;
  const availableBytes = a.bytes;
  const head = `the weights need ${gib(modelBytes)}; ${gib(availableBytes)} of memory is available${whence(a)}`;
  // Activations, KV cache and the runtime need room beside the weights.
  const fits = modelBytes * 1.1 + 512 * 2 ** 20 <= availableBytes;
  if (fits) return { modelBytes, availableBytes, mapped, verdict: 'fits', message: `${head}: it fits in memory` };
  if (mapped) {
    return { modelBytes, availableBytes, mapped, verdict: 'pages', message: `${head}: the file is mapped, so it runs, but the part that does not fit is read from disk again at every token (slow; --mlock cannot help)` };
  }
  return {
    modelBytes, availableBytes, mapped, verdict: 'too-large',
    message: `${head}: the weights would be copied into memory (--no-mmap, or kernels that cannot map files), so loading would fail; use --mmap with the native backend (mapped weights, paged from disk) or a smaller quantisation`,
  };
}
