/**
 * POST /slots/save and /slots/restore (with `grok serve --slot-save-path DIR`; llama-server's slot save /
 * restore, for the prefix cache): save the cached keys and values of a prompt's longest cached prefix to
 * DIR/filename, and read such a file back into the prefix cache, so that a long system prompt survives a
 * restart. Files are named by the client inside DIR only (no paths); what a file holds is checked on
 * reading (src/model/kv-file.ts).
 */
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { SlotError } from '../slots.js';
import type { TextModel } from '../index.js';
import { ApiError, invalid } from './errors.js';
import { parseBody } from './schemas.js';

const filename = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'a file name in the --slot-save-path folder: letters, digits, . _ -, not starting with a dot, no path');
const saveSchema = z.object({ filename, prompt: z.union([z.string().min(1), z.array(z.number().int().min(0)).min(1)]) });
const restoreSchema = z.object({ filename });

export function registerSlotRoutes(app: FastifyInstance, model: () => TextModel, dir: string | null): void {
  const fileOf = (name: string) => {
    if (dir === null) throw new ApiError(501, 'saving and restoring the prefix cache is off: start the server with --slot-save-path DIR', { code: 'not_supported' });
    return path.join(dir, name);
  };
  const slotError = (e: unknown): never => {
    if (e instanceof SlotError) throw invalid(e.message, 'filename');
    throw e;
  };
  app.post('/slots/save', async (req) => {
    const b = parseBody(saveSchema, req.body);
    const file = fileOf(b.filename);
    const grok = model();
    let ids: number[];
    if (typeof b.prompt === 'string') {
      if (!grok.tokenizer) throw invalid('this model has no tokenizer: send the prompt as token ids', 'prompt', 'no_tokenizer');
      ids = grok.encode(b.prompt);
    } else ids = b.prompt;
    const t0 = performance.now();
    const r = await grok.saveSlot(ids, file).catch(slotError);
    return { filename: b.filename, n_saved: r.tokens, n_written: r.bytes, timings: { save_ms: performance.now() - t0 } };
  });
  app.post('/slots/restore', async (req) => {
    const b = parseBody(restoreSchema, req.body);
    const file = fileOf(b.filename);
    const t0 = performance.now();
    const r = await model().restoreSlot(file).catch(slotError);
    return { filename: b.filename, n_restored: r.tokens, timings: { restore_ms: performance.now() - t0 } };
  });
}
