/**
 * The CPUs the kernels' threads should use. Default thread count: one per physical core this process may
 * run on — SMT siblings share a core's vector units and its path to memory, which is what the matmuls
 * are bound by, so a second thread per core adds a barrier participant without adding throughput.
 * Linux: sysfs topology and the process's affinity mask; elsewhere os.availableParallelism().
 */
import fs from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';

/** "0-3,8,10-11" (the kernel's cpu-list format) → [0, 1, 2, 3, 8, 10, 11]; null when malformed. */
export function parseCpuList(s: string): number[] | null {
  const out: number[] = [];
  const body = s.trim();
  if (body === '') return null;
  for (const part of body.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return null;
    const a = Number(m[1]), b = m[2] === undefined ? a : Number(m[2]);
    if (b < a || b - a > 65536) return null;
    for (let c = a; c <= b; c++) out.push(c);
  }
  return [...new Set(out)].sort((x, y) => x - y);
}

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** CPUs this process may run on (Cpus_allowed_list of /proc/self/status), or null where unknown. */
export function allowedCpus(root = '/'): number[] | null {
  const status = readText(path.join(root, 'proc/self/status'));
  const m = status && /^Cpus_allowed_list:\s*(.+)$/m.exec(status);
  return m ? parseCpuList(m[1]!) : null;
}

/**
 * One CPU per physical core among the allowed ones — the lowest-numbered allowed SMT sibling of each core
 * (sysfs topology/thread_siblings_list) — in CPU order; null where the topology is unknown.
 */
export function physicalCoreCpus(root = '/'): number[] | null {
  const allowed = allowedCpus(root);
  if (!allowed || allowed.length === 0) return null;
  const seen = new Set<string>();
  const out: number[] = [];
  for (const cpu of allowed) {
    const sib = readText(path.join(root, `sys/devices/system/cpu/cpu${cpu}/topology/thread_siblings_list`));
    const list = sib === null ? null : parseCpuList(sib);
    if (!list) return null;
    const key = list.join(',');
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(cpu);
  }
  return out;
}

/** Default kernel threads: the physical cores this process may use, else os.availableParallelism(). */
export function defaultThreads(root = '/'): number {
  const cores = physicalCoreCpus(root);
  const n = cores ? Math.min(cores.length, availableParallelism()) : availableParallelism();
  return Math.max(1, Math.min(256, n));
}
