/**
 * Opening and reading input files safely: every reader (GGUF, safetensors, pickle, tokenizer, configs, the
 * weight reader) goes through these, so each of them refuses a directory, FIFO, socket or device with a
 * message naming the file instead of a raw EISDIR or a read that blocks forever, reads exactly the bytes it
 * asked for or says where the file ended, and does not follow a link out of the model's directory.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FormatError } from './errors.js';

function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/** Throws a FormatError unless `file` exists and is a regular file (symlinks followed). */
export function checkRegularFile(file: string): fs.Stats {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    throw new FormatError(file, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'cannot open: no such file' : `cannot open: ${(e as Error).message}`);
  }
  if (!st.isFile()) throw new FormatError(file, `expected a regular file, found ${kindOf(st)}`);
  return st;
}

/**
 * Open a regular file for reading. O_NONBLOCK makes opening a FIFO return at once instead of waiting for a
 * writer; the fstat of the opened descriptor then refuses it (no window between the check and the open).
 */
export function openRegularFile(file: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FormatError(file, code === 'ENOENT' ? 'cannot open: no such file' : code === 'EISDIR' ? 'expected a regular file, found a directory' : `cannot open: ${(e as Error).message}`);
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile()) {
    fs.closeSync(fd);
    throw new FormatError(file, `expected a regular file, found ${kindOf(st)}`);
  }
  return { fd, size: st.size };
}

/** Read exactly dst.length bytes at `offset` (chunked: one read call is limited to 2 GiB). */
export function readExactly(fd: number, file: string, offset: number, dst: Uint8Array): void {
  const CHUNK = 1 << 30;
  for (let done = 0; done < dst.length;) {
    let n: number;
    try {
      n = fs.readSync(fd, dst, done, Math.min(CHUNK, dst.length - done), offset + done);
    } catch (e) {
      throw new FormatError(file, `cannot read ${dst.length} bytes at offset ${offset}: ${(e as Error).message}`);
    }
    if (n === 0) throw new FormatError(file, `unexpected end of file: ${dst.length} bytes needed at offset ${offset}, the file ends at ${offset + done}`);
    done += n;
  }
}

/** A whole small file (configs, indexes, tokenizer models), refusing anything larger than `limit` bytes. */
export function readSmallFile(file: string, limit: number): Buffer {
  const { fd, size } = openRegularFile(file);
  try {
    if (size > limit) throw new FormatError(file, `${size} bytes is larger than the ${limit}-byte limit for this kind of file`);
    const b = Buffer.alloc(size);
    readExactly(fd, file, 0, b);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Parse JSON from a file without echoing its bytes: JavaScript's own message quotes the text it choked on,
 * which would print the start of whatever file a path or link pointed at.
 */
export function parseJsonFile(file: string, limit = 64 << 20): unknown {
  const text = readSmallFile(file, limit).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    const at = /position (\d+)/.exec((e as Error).message)?.[1];
    throw new FormatError(file, `not valid JSON${at === undefined ? '' : ` (at byte ${at})`}`);
  }
}

/**
 * The directory that files found inside a model directory may resolve into. A Hugging Face hub cache keeps
 * `snapshots/<revision>/<file>` as links into `../../blobs/`, so there it is the repository's cache folder;
 * also from a folder inside a snapshot (`snapshots/<revision>/Q4_K_M/`, where a GGUF repo keeps a quant's
 * split files), when the cache folder is named as huggingface_hub names it (`models--org--name`).
 */
export function modelRoot(dir: string): string {
  const real = fs.realpathSync(dir);
  if (path.basename(path.dirname(real)) === 'snapshots') return path.dirname(path.dirname(real));
  for (let d = path.dirname(real); path.dirname(d) !== d; d = path.dirname(d)) {
    const repo = path.dirname(path.dirname(d));
    if (path.basename(path.dirname(d)) === 'snapshots' && /^(models|datasets|spaces)--/.test(path.basename(repo))) return repo;
  }
  return real;
}

/**
 * Refuse a file found inside a model directory (a shard, a checkpoint tensor, a config beside the weights)
 * whose real path lies outside `root` (see modelRoot): a link planted there must not make us read anything
 * else on the machine. Files the user names directly are not contained.
 */
export function checkContained(root: string, file: string): void {
  let real: string;
  try {
    real = fs.realpathSync(file);
  } catch {
    return; // missing: the open that follows names it
  }
  const rel = path.relative(root, real);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new FormatError(file, `is a link to ${real}, outside the model directory ${root}; copy the file into the model directory instead`);
  }
}
