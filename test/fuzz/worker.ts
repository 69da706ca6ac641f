/** Fuzz worker: runs inputs start… of one target, reporting each outcome and every untyped error. */
import { parentPort, workerData } from 'node:worker_threads';
import { ConfigError, FormatError } from '../../src/base/errors.js';
import { makeTarget } from './targets.js';
import type { WorkerData, WorkerMessage } from './harness.js';

const d = workerData as WorkerData;
const progress = new Int32Array(d.progress);
const target = makeTarget(d.target, d.dir);
const post = (m: WorkerMessage) => parentPort!.postMessage(m);
let i = d.start;
for (; i < d.end && (i % 64 !== 0 || Date.now() < d.deadline); i++) {
  Atomics.store(progress, 0, i);
  let cls = 'ok';
  try {
    target.run(d.seed, i);
  } catch (e) {
    if (e instanceof FormatError) cls = 'FormatError';
    else if (e instanceof ConfigError) cls = 'ConfigError';
    else {
      cls = e instanceof Error ? e.name : typeof e;
      post({ kind: 'defect', index: i, cls, message: e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e) });
    }
  }
  // Per input, so nothing is lost when a later input hangs or kills the worker.
  post({ kind: 'counts', counts: { [cls]: 1 } });
}
target.close();
post({ kind: 'done', next: i });
