/**
 * Memory this process may still fill: MemAvailable (free RAM plus reclaimable cache), lowered by the
 * process's own cgroup. A container or `systemd-run -p MemoryMax=` limit is invisible to MemAvailable, and
 * the OOM killer acts on the cgroup without a word, so the limit is read from the cgroup the process is in
 * (/proc/self/cgroup), not from the mount's root: v2 (`0::/path` → <mount>/path/memory.max), v1 (the
 * `memory` controller's line → <mount>/memory/path/memory.limit_in_bytes). Every level from the process's
 * cgroup up to the mount counts (a parent's limit binds its children): the level with the least room wins.
 *
 * Room at a level = limit − (usage − inactive file pages): the usage counts page cache, and the inactive
 * part of it is what the kernel reclaims before it kills anything.
 *
 * `root` (default '/') is where /proc and /sys are looked for: tests pass a fake tree.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface CgroupLimit {
  readonly version: 1 | 2;
  /** The cgroup whose limit binds (as /proc/self/cgroup names it, or an ancestor). */
  readonly cgroup: string;
  readonly limitBytes: number;
  /** Its usage (memory.current / memory.usage_in_bytes), page cache included. */
  readonly usageBytes: number;
  /** limit − (usage − inactive file pages), at least 0. */
  readonly roomBytes: number;
}

export interface MemoryAvailability {
  /** min(MemAvailable, the cgroup's room). */
  readonly bytes: number;
  /** MemAvailable from /proc/meminfo (os.freemem() where there is none). */
  readonly memAvailableBytes: number;
  /** The binding cgroup limit, when the process is under one. */
  readonly cgroup?: CgroupLimit;
}

/** A v1 "unlimited" limit is a page-rounded 2^63 − 1; anything this large is no limit. */
const UNLIMITED = 2 ** 60;

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** A byte count file: the number, or undefined for 'max', absent or unreadable files and nonsense. */
function readBytes(file: string): number | undefined {
  const t = readText(file)?.trim();
  if (t === undefined || t === 'max' || !/^\d+$/.test(t)) return undefined;
  return Number(t);
}

function statField(file: string, key: string): number {
  const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(readText(file) ?? '');
  return m ? Number(m[1]) : 0;
}

/** The cgroup paths of this process: the v2 one ('0::/path') and the v1 memory controller's. */
function ownCgroups(root: string): { v2?: string; v1?: string } {
  const out: { v2?: string; v1?: string } = {};
  for (const line of (readText(path.join(root, 'proc/self/cgroup')) ?? '').split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === '0' && m[2] === '') out.v2 = m[3]!;
    else if (m[2]!.split(',').includes('memory')) out.v1 = m[3]!;
  }
  return out;
}

/** The levels from `mount`/`cg` up to `mount` (a path that does not exist here is skipped by the reads). */
function levels(mount: string, cg: string): string[] {
  const rel = path.posix.normalize(`/${cg}`).split('/').filter((p) => p !== '' && p !== '..');
  const out: string[] = [];
  for (let n = rel.length; n >= 0; n--) out.push(path.join(mount, ...rel.slice(0, n)));
  return out;
}

/** The limit with the least room over this process's cgroup and its ancestors, or undefined when none binds. */
export function cgroupLimit(root = '/'): CgroupLimit | undefined {
  const own = ownCgroups(root);
  const base = path.join(root, 'sys/fs/cgroup');
  // v1's memory controller when the process has one (hybrid systems keep memory on v1), else v2.
  const plan = own.v1 !== undefined
    ? { version: 1 as const, cg: own.v1, mount: path.join(base, 'memory'), limit: 'memory.limit_in_bytes', usage: 'memory.usage_in_bytes', inactive: 'total_inactive_file' }
    : own.v2 !== undefined
      ? { version: 2 as const, cg: own.v2, mount: base, limit: 'memory.max', usage: 'memory.current', inactive: 'inactive_file' }
      : undefined;
  if (!plan) return undefined;
  let best: CgroupLimit | undefined;
  for (const dir of levels(plan.mount, plan.cg)) {
    const limit = readBytes(path.join(dir, plan.limit));
    if (limit === undefined || limit >= UNLIMITED) continue;
    const usage = readBytes(path.join(dir, plan.usage)) ?? 0;
    const inactive = Math.min(usage, statField(path.join(dir, 'memory.stat'), plan.inactive));
    const room = Math.max(0, limit - (usage - inactive));
    if (!best || room < best.roomBytes) {
      best = { version: plan.version, cgroup: `/${path.relative(plan.mount, dir)}`, limitBytes: limit, usageBytes: usage, roomBytes: room };
    }
  }
  return best;
}

/** MemAvailable and the cgroup's room, and the smaller of the two. */
export function memoryAvailability(root = '/'): MemoryAvailability {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(readText(path.join(root, 'proc/meminfo')) ?? '');
  const memAvailableBytes = m ? Number(m[1]) * 1024 : os.freemem();
  const cgroup = cgroupLimit(root);
  return { bytes: cgroup ? Math.min(memAvailableBytes, cgroup.roomBytes) : memAvailableBytes, memAvailableBytes, ...(cgroup ? { cgroup } : {}) };
}

/** Bytes this process may still fill (memoryAvailability().bytes). */
export function availableMemory(root = '/'): number {
  return memoryAvailability(root).bytes;
}
