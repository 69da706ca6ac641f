/** A kernel worker that starts, then dies when the first job arrives (a crashed thread). */
import { workerData } from 'node:worker_threads';
import { CTL } from '../../src/kernels/pool-protocol.js';

const ctl = new Int32Array((workerData as { ctl: SharedArrayBuffer }).ctl);
Atomics.add(ctl, CTL.STARTED, 1);
const gen = Atomics.load(ctl, CTL.GEN);
while (Atomics.load(ctl, CTL.GEN) === gen) Atomics.wait(ctl, CTL.GEN, gen, 100);
process.exit(3);
