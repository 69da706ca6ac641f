/**
 * A stage's compute thread (started by ./stage.ts): it loads the stage's layers and runs their forward
 * passes, so that the stage's main thread — its gRPC streams, keepalive pings, results on their way back —
 * never waits behind a pass. A result written just before a long pass would otherwise leave only after it,
 * and a peer's pings would go unanswered during a long prefill chunk.
 *
 * Each stream into the stage has its own sequences and KV caches here. Messages are handled in the order
 * they come (./protocol.ts ToStageWorker); each step is answered with its output (hidden states for the next
 * stage, or the logits on the last one) or a failure that names what was wrong with it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { closeKernels } from '../../kernels/index.js';
import type { GrokModel, KVCache } from '../../model/grok.js';
import { loadWeights } from '../index.js';
import { bytesF32, f32Bytes, type FromStageWorker, type StageWorkerInit, type Step, type ToStageWorker } from './protocol.js';

const init = workerData as StageWorkerInit;
const port = parentPort!;
const post = (m: FromStageWorker): void => port.postMessage(m);

let loaded: Awaited<ReturnType<typeof loadWeights>> | null = null;
try {
  loaded = await loadWeights(init.path, { ...init.options, onMemoryPlan: (plan) => post({ type: 'memoryPlan', plan }) });
} catch (e) {
  post({ type: 'loadFailed', error: { name: (e as Error).name, message: (e as Error).message } });
  port.close();
}
if (loaded) serve(loaded.model, loaded.ownKernels);

function serve(m: GrokModel, ownKernels: boolean): void {
  /** Per stream: its sequence ids → their KV caches (this stage's layers). */
  const streams = new Map<number, Map<number, KVCache>>();
  const cachesOf = (stream: number): Map<number, KVCache> => {
    let c = streams.get(stream);
    if (!c) streams.set(stream, c = new Map());
    return c;
  };
  post({ type: 'loaded', config: m.config, range: m.range, projects: m.projects, backend: m.kernels.name });
  port.on('message', (msg: ToStageWorker) => {
    switch (msg.type) {
      case 'step':
        try {
          const { rows, out } = run(m, cachesOf(msg.stream), msg.step);
          post({ type: 'out', stream: msg.stream, id: msg.step.id, rows, out: f32Bytes(out) });
        } catch (e) {
          post({ type: 'failure', stream: msg.stream, id: msg.step.id, message: (e as Error).message });
        }
        break;
      case 'fork': {
        const caches = cachesOf(msg.stream), src = caches.get(msg.from);
        if (src) caches.set(msg.to, src.clone());
        break;
      }
      case 'free': {
        const caches = cachesOf(msg.stream);
        for (const id of msg.seqs) caches.delete(id);
        break;
      }
      case 'gone':
        streams.delete(msg.stream);
        break;
      case 'close':
        streams.clear();
        m.close();
        if (ownKernels) closeKernels(m.kernels);
        port.close();
        break;
    }
  });
}

/** One step of a peer, checked (every array's length, positions, capacities, the hidden bytes) before use. */
function run(m: GrokModel, caches: Map<number, KVCache>, s: Step): { rows: number; out: Float32Array } {
  const c = m.config, D = c.dModel;
  const n = s.seqs.length;
  if (s.counts.length !== n || s.positions.length !== n || s.capacities.length !== n) {
    throw new Error(`a step of ${n} sequences with ${s.counts.length} counts, ${s.positions.length} positions and ${s.capacities.length} capacities`);
  }
  let N = 0;
  const seqs = s.seqs.map((id, i) => {
    const T = s.counts[i]!, pos = s.positions[i]!, cap = s.capacities[i]!;
    if (!(Number.isInteger(T) && T >= 1 && Number.isInteger(pos) && pos >= 0 && Number.isInteger(cap) && pos + T <= cap)) {
      throw new Error(`sequence ${id}: ${T} tokens at position ${pos} do not fit its capacity of ${cap}`);
    }
    let cache = caches.get(id);
    if (!cache && pos === 0) caches.set(id, cache = m.newCache(cap));
    if (!cache) throw new Error(`unknown sequence ${id} at position ${pos} (this stage restarted since it began)`);
    if (cache.length !== pos) throw new Error(`sequence ${id} continues at position ${pos}, but this stage holds ${cache.length} of it`);
    const tokens = s.tokens.slice(N, N + T);
    N += T;
    return { tokens, cache };
  });
  if (N !== s.tokens.length) throw new Error(`the step carries ${s.tokens.length} tokens for sequences of ${N}`);
  const out = m.forward(seqs, { hidden: bytesF32(s.hidden, 'hidden states', N * D), lastOnly: s.lastOnly });
  return { rows: m.projects ? out.length / c.vocabSize : N, out };
}
