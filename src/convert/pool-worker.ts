/** Worker thread of QuantPool (pool.ts): runs QuantJobs, returns the bytes by transfer (or in the shared memory the job named). */
import { parentPort } from 'node:worker_threads';
import { runQuantJob, type QuantJob } from './pool-jobs.js';

if (!parentPort) throw new Error('pool-worker.js must run as a worker thread');
const port = parentPort;
port.on('message', (msg: { id: number; job: QuantJob }) => {
  try {
    const r = runQuantJob(msg.job);
    port.postMessage({ id: msg.id, result: r }, r.out.buffer instanceof ArrayBuffer ? [r.out.buffer] : []);
  } catch (e) {
    port.postMessage({ id: msg.id, error: e instanceof Error ? e.message : String(e) });
  }
});
