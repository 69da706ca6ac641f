/**
 * The read queue of kernel sets without I/O threads (reference, WebAssembly): each read happens when it is
 * waited for, on the calling thread. Correct everywhere, overlapping nothing.
 */
import fs from 'node:fs';
import os from 'node:os';
import { FormatError } from '../base/errors.js';
import { openRegularFile, readExactly } from '../base/files.js';
import type { Kernels, ReadQueue } from './types.js';

export class SyncReadQueue implements ReadQueue {
  readonly alignment = 1;
  private readonly files: { path: string; fd: number }[] = [];
  private readonly pending = new Map<number, { file: number; offset: number; dst: Uint8Array; need: number }>();
  private next = 1;
  private bytes = 0;
  private busy = 0;
  private closed = false;

  constructor(private readonly kernels: Pick<Kernels, 'allocWeight'>) {}

  alloc(bytes: number): Uint8Array {
    return this.kernels.allocWeight(bytes);
  }

  open(file: string): number {
    if (this.closed) throw new Error('read queue: closed');
    this.files.push({ path: file, fd: openRegularFile(file).fd });
    return this.files.length - 1;
  }

  submit(file: number, offset: number, dst: Uint8Array, need: number): number {
    if (this.closed) throw new Error('read queue: closed');
    if (!this.files[file]) throw new Error(`read queue: no file ${file}`);
    if (!(need >= 0 && need <= dst.length)) throw new Error(`read queue: need ${need} outside 0…${dst.length}`);
    this.pending.set(this.next, { file, offset, dst, need });
    return this.next++;
  }

  wait(ticket: number): void {
    const r = this.pending.get(ticket);
    if (!r) throw new Error(`read queue: ticket ${ticket} is not pending`);
    this.pending.delete(ticket);
    const f = this.files[r.file]!;
    const t0 = performance.now();
    // Past `need` the range may run over the file's end: read what is there.
    readExactly(f.fd, f.path, r.offset, r.dst.subarray(0, r.need));
    if (r.dst.length > r.need) fs.readSync(f.fd, r.dst, r.need, r.dst.length - r.need, r.offset + r.need);
    this.busy += (performance.now() - t0) / 1000;
    this.bytes += r.dst.length;
  }

  done(ticket: number): boolean {
    return !this.pending.has(ticket);
  }

  cancel(ticket: number): void {
    const r = this.pending.get(ticket);
    if (r) this.pending.set(ticket, { ...r, dst: r.dst.subarray(0, 0), need: 0 }); // nothing left to read
  }

  totals(): { bytes: number; directBytes: number; busySeconds: number } {
    return { bytes: this.bytes, directBytes: 0, busySeconds: this.busy };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending.clear();
    for (const f of this.files) fs.closeSync(f.fd);
  }
}

const ERRNO_NAMES = new Map(Object.entries(os.constants.errno).map(([name, n]) => [n, name]));

/** FormatError for a failed read: which file, where, and why. */
export function readError(file: string, offset: number, length: number, errno: number, at: number): FormatError {
  const name = ERRNO_NAMES.get(errno);
  const why = name === 'ENODATA' ? 'the file ends before the range does (truncated since it was opened?)'
    : name === 'EBADF' ? 'the reader was closed'
    : name === 'E2BIG' ? 'too many reads in flight'
    : `${name ?? `errno ${errno}`}${name === 'EIO' ? ' (an I/O error: a failing disk or a network filesystem that went away)' : ''}`;
  return new FormatError(file, `cannot read ${length} bytes at offset ${offset} (failed at ${at}): ${why}`);
}
