/**
 * Writing a file so that the target path only ever holds the old file or the complete new one: write a
 * temporary file in the target's directory, fsync it, rename it over the target, fsync the directory.
 * An error, SIGINT or SIGTERM removes the temporary file (SIGKILL cannot be caught: the temporary file,
 * named `.<name>.tmp-<pid>-<random>`, stays beside the target, and the target is untouched).
 *
 * `refuseInputs` runs before anything is opened for writing: the target must not be any of the inputs,
 * compared by device and inode, so a symlink, a hard link or a path through a symlinked directory that
 * leads to an input is refused instead of truncating it.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const pending = new Set<string>();
let hooked = false;

function cleanUp(): void {
  for (const p of pending) {
    try { fs.rmSync(p, { force: true }); } catch { /* best effort while exiting */ }
  }
  pending.clear();
}

/** Remove the temporary files, then let the signal do what it would have done without us. */
function onSignal(sig: NodeJS.Signals): void {
  cleanUp();
  unhook();
  if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', cleanUp);
}

function unhook(): void {
  if (!hooked) return;
  hooked = false;
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
  process.removeListener('exit', cleanUp);
}

/** Throws when `out` is one of `inputs` (same device and inode; links followed). */
export function refuseInputs(out: string, inputs: Iterable<string>): void {
  let o: fs.Stats;
  try {
    o = fs.statSync(out);
  } catch {
    return; // nothing there yet: cannot be an input
  }
  if (o.isDirectory()) throw new Error(`${out}: is a directory; give the output file's path`);
  for (const i of inputs) {
    let s: fs.Stats;
    try { s = fs.statSync(i); } catch { continue; }
    if (s.dev === o.dev && s.ino === o.ino) {
      throw new Error(`${out}: this is the input ${i} (the same file${path.resolve(out) === path.resolve(i) ? '' : ' through a link'}); refusing to overwrite a model that is being read`);
    }
  }
}

export class AtomicFile {
  /** The temporary path being written. */
  readonly temp: string;
  private done = false;

  constructor(readonly target: string) {
    const dir = path.dirname(path.resolve(target));
    if (!fs.existsSync(dir)) throw new Error(`${target}: the directory ${dir} does not exist`);
    this.temp = path.join(dir, `.${path.basename(target)}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
    pending.add(this.temp);
    hook();
  }

  /** fsync the temporary file, rename it over the target, fsync the directory. */
  async commit(): Promise<void> {
    if (this.done) throw new Error(`${this.target}: already committed or discarded`);
    try {
      const fh = await fs.promises.open(this.temp, 'r+');
      try { await fh.sync(); } finally { await fh.close(); }
      await fs.promises.rename(this.temp, this.target);
    } catch (e) {
      this.discard();
      throw new Error(`${this.target}: could not be written: ${(e as Error).message}`);
    }
    this.release();
    try {
      const d = await fs.promises.open(path.dirname(path.resolve(this.target)), 'r');
      try { await d.sync(); } finally { await d.close(); }
    } catch { /* directories cannot be fsynced on every file system */ }
  }

  /** Remove the temporary file (errors, interruptions). */
  discard(): void {
    if (this.done) return;
    try { fs.rmSync(this.temp, { force: true }); } catch { /* already gone */ }
    this.release();
  }

  private release(): void {
    this.done = true;
    pending.delete(this.temp);
    if (pending.size === 0) unhook();
  }
}
