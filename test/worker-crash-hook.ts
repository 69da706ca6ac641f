/**
 * Loaded with `node --import` into a `grok serve` child by test/server-worker.test.ts: keeps every Worker
 * the process makes, and on SIGUSR2 sends each a message of a type it has no handler for, so that the
 * worker throws an uncaught TypeError and dies, as a bug in the worker would end it. Test-only: nothing in
 * src/ knows about it.
 */
import { createRequire, syncBuiltinESMExports } from 'node:module';
import type { Worker as WorkerType } from 'node:worker_threads';

const require = createRequire(import.meta.url);
const wt = require('node:worker_threads') as typeof import('node:worker_threads');
const workers: WorkerType[] = [];
const Original = wt.Worker;
wt.Worker = class extends Original {
  constructor(...args: ConstructorParameters<typeof Original>) {
    super(...args);
    workers.push(this);
  }
} as typeof Original;
syncBuiltinESMExports();
process.on('SIGUSR2', () => { for (const w of workers) w.postMessage({ type: 'no-such-message' }); });
