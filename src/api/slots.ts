/**
 * Saving the prefix cache's rows of a prompt to disk and restoring them (`grok serve --slot-save-path`,
 * llama-server's slot save / restore): a long system prompt computed once is read back after a restart
 * instead of prefilled again. The rows go through src/model/kv-file.ts, whose header names the model (its
 * file name and a hash of its configuration), the KV type and the token count, all checked on reading.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { GrokModel } from '../model/grok.js';
import { KVRows } from '../model/grok.js';
import { decodeKVFile, encodeKVFile, type KVFileModel } from '../model/kv-file.js';
import type { Scheduler } from '../engine/scheduler.js';

/** What saving wrote: the tokens of the longest cached prefix, and the file's bytes. */
export interface SlotSaved {
  tokens: number;
  bytes: number;
}

/** The identity a KV file is checked against: this model's file name, configuration and KV type. */
export function kvFileModel(model: GrokModel, modelPath: string): KVFileModel {
  // The context length is a serving choice (-c), not the model's: rows saved under one serve under another.
  const { contextLength: _ctx, ...shape } = model.config;
  const hash = crypto.createHash('sha256').update(JSON.stringify(shape)).digest('hex').slice(0, 16);
  const probe = model.newCache(1);
  return {
    model: `${modelName(modelPath)}#${hash}`, kvType: model.kvType, layers: model.config.nLayers,
    stride: probe.exportRows(0, 0).stride, vocabSize: model.config.vocabSize, contextLength: model.config.contextLength,
  };
}

/** The model's file name, with its folder's when the name is generic (…/tiny-a/ckpt-0, …/default/model.gguf). */
function modelName(modelPath: string): string {
  const base = path.basename(modelPath);
  return /^(ckpt-\d+|model\.gguf|model\.safetensors|consolidated.*)$/i.test(base) ? `${path.basename(path.dirname(modelPath))}/${base}` : base;
}

/** Write the cached rows of the longest cached prefix of `tokens` to `file`; throws when nothing of it is cached. */
export function saveSlot(engine: Scheduler, model: GrokModel, modelPath: string, tokens: readonly number[], file: string): SlotSaved {
  const got = engine.exportPrefix(tokens);
  if (!got) throw new SlotError(`nothing of this prompt is in the prefix cache: run it once (a request with it), then save`);
  if (!(got.rows instanceof KVRows)) throw new Error('the prefix cache holds rows of another kind than this model\'s');
  const buf = encodeKVFile(kvFileModel(model, modelPath), got.tokens, got.rows);
  // Written beside, then renamed: a reader never sees half a file.
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, buf);
  fs.renameSync(tmp, file);
  return { tokens: got.tokens.length, bytes: buf.length };
}

/** Read `file` (checked against this model) into the prefix cache; returns its token count. */
export function restoreSlot(engine: Scheduler, model: GrokModel, modelPath: string, file: string): { tokens: number } {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new SlotError(`${path.basename(file)}: cannot read it: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let read: ReturnType<typeof decodeKVFile>;
  try {
    read = decodeKVFile(buf, kvFileModel(model, modelPath), path.basename(file));
  } catch (e) {
    throw new SlotError((e as Error).message);
  }
  engine.importPrefix(read.tokens, read.rows);
  return { tokens: read.tokens.length };
}

/** A save or restore that cannot be done for a reason the client can fix (a 400). */
export class SlotError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SlotError';
  }
}
