/**
 * Training checkpoints: everything needed to continue exactly where a run stopped — parameters, AdamW
 * moments and step count, the RNG state, the data position, and the run's settings (to refuse resuming
 * with different ones).
 * Layout: magic "GTCK", u32 version, u32 JSON length, JSON header, then per parameter (header order) its
 * f32 values, AdamW m, AdamW v — all little-endian. Written to a temporary file and renamed, so a crash
 * while saving leaves the previous checkpoint intact.
 */
import fs from 'node:fs';
import { FormatError } from '../base/errors.js';
import type { ParamSet } from './model.js';
import type { AdamW } from './optim.js';

const MAGIC = 0x4b435447; // "GTCK" little-endian
const VERSION = 1;

export interface CheckpointState {
  /** Optimiser steps completed. */
  step: number;
  rng: number[];
  data: { epoch: number; index: number };
  /** Settings the run was started with (compared on resume). */
  settings: unknown;
  /** Losses logged so far (for the model card's curve). */
  history: { step: number; loss: number; valLoss?: number }[];
}

interface Header extends CheckpointState {
  adamT: number;
  tensors: { name: string; shape: number[] }[];
}

export function saveCheckpoint(file: string, params: ParamSet, opt: AdamW, state: CheckpointState): void {
  const header: Header = { ...state, adamT: opt.t, tensors: params.list.map((p) => ({ name: p.name, shape: p.shape })) };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const pre = Buffer.alloc(12);
  pre.writeUInt32LE(MAGIC, 0);
  pre.writeUInt32LE(VERSION, 4);
  pre.writeUInt32LE(json.length, 8);
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, pre);
    fs.writeSync(fd, json);
    params.list.forEach((p, j) => {
      for (const arr of [Float32Array.from(p.data), opt.m[j], opt.v[j]]) {
        fs.writeSync(fd, new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength));
      }
    });
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** Reads a checkpoint into params and opt (which must have the same tensor names and shapes). */
export function loadCheckpoint(file: string, params: ParamSet, opt: AdamW): CheckpointState {
  const buf = fs.readFileSync(file);
  if (buf.length < 12) throw new FormatError(file, `checkpoint is ${buf.length} bytes, shorter than its 12-byte preamble`);
  if (buf.readUInt32LE(0) !== MAGIC) throw new FormatError(file, 'not a grok-ts training checkpoint (magic "GTCK" missing)');
  const version = buf.readUInt32LE(4);
  if (version !== VERSION) throw new FormatError(file, `checkpoint version ${version}, expected ${VERSION}`);
  const jlen = buf.readUInt32LE(8);
  if (12 + jlen > buf.length) throw new FormatError(file, `checkpoint header length ${jlen} runs past the end of the file (${buf.length} bytes)`);
  let header: Header;
  try {
    header = JSON.parse(buf.subarray(12, 12 + jlen).toString('utf8')) as Header;
  } catch (e) {
    throw new FormatError(file, `checkpoint header is not valid JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(header.tensors) || header.tensors.length !== params.list.length) {
    throw new FormatError(file, `checkpoint has ${header.tensors?.length} tensors, the model has ${params.list.length}`);
  }
  let off = 12 + jlen;
  params.list.forEach((p, j) => {
    const h = header.tensors[j];
    if (h.name !== p.name || JSON.stringify(h.shape) !== JSON.stringify(p.shape)) {
      throw new FormatError(file, `tensor ${j} is ${h.name} ${JSON.stringify(h.shape)}, the model expects ${p.name} ${JSON.stringify(p.shape)}`);
    }
    const bytes = p.data.length * 4;
    if (off + 3 * bytes > buf.length) throw new FormatError(file, `checkpoint is truncated in tensor ${p.name}`);
    const read = (o: number) => new Float32Array(buf.buffer.slice(buf.byteOffset + o, buf.byteOffset + o + bytes));
    p.data.set(read(off));
    opt.m[j].set(read(off + bytes));
    opt.v[j].set(read(off + 2 * bytes));
    off += 3 * bytes;
  });
  if (off !== buf.length) throw new FormatError(file, `checkpoint has ${buf.length - off} trailing bytes`);
  opt.t = header.adamT;
  return { step: header.step, rng: header.rng, data: header.data, settings: header.settings, history: header.history ?? [] };
}
