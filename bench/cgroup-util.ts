/**
 * Memory cgroups and page-cache eviction for the benchmarks that run a model larger than the memory they
 * may use (bench/cgroup.ts, bench/larger-than-ram.ts). Needs root (to create the cgroup; v1 or v2) and GNU dd.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface Cgroup {
  /** The cgroup.procs file a process writes its pid into to join. */
  procs: string;
  /** Peak memory charged to the cgroup (bytes): anonymous memory and page cache together. */
  peak(): number;
  /** Processes the kernel's OOM killer has killed in this cgroup. */
  oomKills(): number;
  close(): void;
}

let made = 0;

/** A memory cgroup limited to `bytes`, no swap (v2 when the unified hierarchy has the memory controller, else v1). */
export function makeCgroup(bytes: number): Cgroup {
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new Error(`a cgroup limit must be a positive whole number of bytes, not ${bytes}`);
  const name = `grok-bench-${process.pid}-${made++}`;
  const event = (file: string, key: string) => Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(fs.readFileSync(file, 'utf8'))?.[1] ?? 0);
  const v2 = '/sys/fs/cgroup/cgroup.controllers';
  if (fs.existsSync(v2) && fs.readFileSync(v2, 'utf8').includes('memory')) {
    const dir = path.join('/sys/fs/cgroup', name);
    fs.writeFileSync('/sys/fs/cgroup/cgroup.subtree_control', '+memory');
    fs.mkdirSync(dir);
    configure(dir, () => {
      fs.writeFileSync(path.join(dir, 'memory.max'), String(bytes));
      fs.writeFileSync(path.join(dir, 'memory.swap.max'), '0');
    });
    return {
      procs: path.join(dir, 'cgroup.procs'),
      peak: () => Number(fs.readFileSync(path.join(dir, 'memory.peak'), 'utf8')),
      oomKills: () => event(path.join(dir, 'memory.events'), 'oom_kill'),
      close: () => remove(dir),
    };
  }
  const dir = path.join('/sys/fs/cgroup/memory', name);
  fs.mkdirSync(dir);
  configure(dir, () => {
    fs.writeFileSync(path.join(dir, 'memory.limit_in_bytes'), String(bytes));
    // memory.memsw.* exists only with swap accounting; without it (or without swap) the limit above is all there is.
    const memsw = path.join(dir, 'memory.memsw.limit_in_bytes');
    if (fs.existsSync(memsw)) fs.writeFileSync(memsw, String(bytes));
  });
  return {
    procs: path.join(dir, 'cgroup.procs'),
    peak: () => Number(fs.readFileSync(path.join(dir, 'memory.max_usage_in_bytes'), 'utf8')),
    oomKills: () => event(path.join(dir, 'memory.oom_control'), 'oom_kill'),
    close: () => remove(dir),
  };
}

/** Remove a cgroup; a process just killed (by the OOM killer, say) can keep it busy for a moment after it is reaped. */
function remove(dir: string): void {
  for (let tries = 0; ; tries++) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || tries >= 50) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
}

/** Set a new cgroup's limits, removing it again when that fails. */
function configure(dir: string, set: () => void): void {
  try {
    set();
  } catch (e) {
    remove(dir);
    throw e;
  }
}

/** Drop `file`'s pages from the page cache (GNU dd's nocache: posix_fadvise DONTNEED over the whole file). */
export function evict(file: string): void {
  const r = spawnSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
  if (r.status !== 0) throw new Error(`dd could not drop ${file} from the page cache: ${r.stderr}`);
}

/** The sh arguments that run `cmd` inside `cg` when given (the shell joins the cgroup, then execs the command). */
export function shellArgs(cmd: readonly string[], cg?: Cgroup): string[] {
  return cg ? ['-c', `echo $$ > ${cg.procs} && exec "$@"`, 'sh', ...cmd] : ['-c', 'exec "$@"', 'sh', ...cmd];
}
