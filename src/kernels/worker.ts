/**
 * Kernel worker: one instance of the wasm module per weight memory, a loop that sleeps on the control
 * block, runs whatever chunks of the current job it can claim, and reports done. New memories arrive as
 * messages on a private port, read synchronously (receiveMessageOnPort) because this thread never
 * returns to its event loop.
 */
import { receiveMessageOnPort, workerData } from 'node:worker_threads';
import { CHUNK_FNS, CMD, CTL, type ArenaMessage, type WorkerInit } from './pool-protocol.js';

type ChunkExport = (args: number, r0: number, r1: number, scratch: number) => void;

const init = workerData as WorkerInit;
const ctl = new Int32Array(init.ctl);
const scratch = init.scratchBase + init.slot * init.scratchBytes;
const instances: ChunkExport[][] = [];

function sync(): void {
  const want = Atomics.load(ctl, CTL.ARENAS);
  while (instances.length < want) {
    const m = receiveMessageOnPort(init.port);
    if (!m) continue; // posted before the SYNC, so it is on its way
    const msg = m.message as ArenaMessage;
    const inst = new WebAssembly.Instance(init.module, { env: { memory: msg.memory } });
    const ex = inst.exports as Record<string, ChunkExport>;
    instances[msg.index] = CHUNK_FNS.map((n) => ex[n]!);
  }
}

Atomics.add(ctl, CTL.STARTED, 1);
Atomics.notify(ctl, CTL.STARTED);

// Workers start before the first job is posted (GEN was 0 then); a late start must still see that job.
let seen = 0;
for (;;) {
  let spins = 0;
  let g = Atomics.load(ctl, CTL.GEN);
  while (g === seen) {
    if (++spins > init.spin) Atomics.wait(ctl, CTL.GEN, seen);
    g = Atomics.load(ctl, CTL.GEN);
  }
  seen = g;
  const cmd = Atomics.load(ctl, CTL.CMD);
  if (cmd === CMD.EXIT) break;
  try {
    if (cmd === CMD.SYNC) sync();
    else {
      const fn = instances[ctl[CTL.ARENA]!]![ctl[CTL.FN]!]!;
      const args = ctl[CTL.ARGS]!;
      const total = ctl[CTL.TOTAL]!;
      const chunk = ctl[CTL.CHUNK]!;
      const nChunks = Math.ceil(total / chunk);
      for (let c = Atomics.add(ctl, CTL.NEXT, 1); c < nChunks; c = Atomics.add(ctl, CTL.NEXT, 1)) {
        const r0 = c * chunk;
        fn(args, r0, Math.min(r0 + chunk, total), scratch);
        Atomics.add(ctl, CTL.BEAT, 1);
      }
    }
  } catch (e) {
    init.port.postMessage({ error: e instanceof Error ? e.message : String(e) });
    Atomics.store(ctl, CTL.ERR, init.slot);
  }
  Atomics.add(ctl, CTL.DONE, 1);
  Atomics.notify(ctl, CTL.DONE);
}
