/**
 * A pipeline stage (`grok stage --layers K:L --listen HOST:PORT [--next HOST:PORT]`): a gRPC server whose
 * one method is a bidirectional stream from the stage before it. Its layers live in a compute thread
 * (./stage-worker.ts), which holds each stream's KV caches (for this stage's layers only) and runs the
 * passes; this thread only moves frames, so results leave as soon as they are computed and pings are
 * answered during long passes. Frames are handled in order: a step runs this stage's layers on the hidden
 * states it carries, then either its logits go back (the last stage, with the final norm and output head)
 * or the result goes on through this stage's link to the next stage and the answer is relayed back. Several
 * steps may be in flight (the leader's micro-batches): while one is behind, the next one runs here.
 *
 * When the link behind it goes down, every stream into this stage is ended with the link's message, so the
 * leader learns which stage is down and that the sequences behind it are gone; a stream that ends frees its
 * sequences here and behind.
 */
import { Worker } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import type { GrokConfig } from '../../model/config.js';
import type { LayerRange } from '../../model/grok.js';
import type { MemoryPlan } from '../../model/memory.js';
import { CASCADE, StageLink } from './link.js';
import {
  CHANNEL_OPTIONS, modelIdentity, sameToken, stageService,
  type Frame, type FromStageWorker, type StageLoadOptions, type StageWorkerInit, type Step, type ToStageWorker,
} from './protocol.js';
import { serverCredentials, type StageTls } from './tls.js';

export interface StageOptions {
  /** The model's file or folder (its identity is compared at the handshake). */
  modelPath: string;
  /** How the compute thread loads this stage's layers (load.layers: which). */
  load: StageLoadOptions;
  /** HOST:PORT to listen on (port 0: any free port). */
  listen: string;
  /** The next stage, when this one does not hold the last layer. */
  next?: string;
  /** The shared secret peers must present ('' for none). */
  token: string;
  /**
   * Mutual TLS (--stage-tls-*; ./tls.ts): the server takes only peers with a certificate signed by the CA
   * (and no plaintext), and the link to --next shows this certificate. The token is checked on top.
   */
  tls?: StageTls | null;
  stepTimeoutMs?: number;
  /** A line about a peer or the link (default: none). */
  log?: (line: string) => void;
  /** What the layers need against the memory there is (before they are read). */
  onMemoryPlan?: (plan: MemoryPlan) => void;
}

export interface RunningStage {
  /** HOST:PORT really bound. */
  readonly address: string;
  readonly link: StageLink | null;
  readonly config: GrokConfig;
  readonly range: LayerRange;
  /** The kernels' backend in the compute thread. */
  readonly backend: string;
  /** Rejects when the compute thread dies (the stage cannot go on); never resolves. */
  readonly crashed: Promise<never>;
  close(): Promise<void>;
}

type Duplex = grpc.ServerDuplexStream<Frame, Frame>;
/** A step waiting for the compute thread's output. */
type Settle = { resolve: (out: { rows: number; out: Uint8Array }) => void; reject: (e: Error) => void };

export async function startStage(o: StageOptions): Promise<RunningStage> {
  const log = o.log ?? (() => undefined);
  const numerics = o.load.kernelOptions?.mode ?? 'fast';
  const worker = new Worker(new URL('./stage-worker.js', import.meta.url), { workerData: { path: o.modelPath, options: o.load } satisfies StageWorkerInit });
  const tell = (m: ToStageWorker): void => worker.postMessage(m);
  /** Each stream's steps waiting for the compute thread: stream → step id → settle. */
  const waiting = new Map<number, Map<number, Settle>>();
  let dead: Error | null = null;
  let rejectCrash!: (e: Error) => void;
  const crashed = new Promise<never>((_, reject) => { rejectCrash = reject; });
  crashed.catch(() => undefined);
  const loaded = await new Promise<Extract<FromStageWorker, { type: 'loaded' }>>((resolve, reject) => {
    const die = (e: Error): void => {
      dead ??= e;
      reject(e);
      for (const w of waiting.values()) for (const p of w.values()) p.reject(e);
      waiting.clear();
      rejectCrash(e);
    };
    worker.on('message', (m: FromStageWorker) => {
      if (m.type === 'memoryPlan') o.onMemoryPlan?.(m.plan);
      else if (m.type === 'loaded') resolve(m);
      else if (m.type === 'loadFailed') reject(m.error.name === 'RangeError' ? new RangeError(m.error.message) : new Error(m.error.message));
      else {
        const w = waiting.get(m.stream), p = w?.get(m.id);
        if (!p) return; // the stream ended meanwhile
        w!.delete(m.id);
        if (m.type === 'out') p.resolve(m);
        else p.reject(new Error(m.message));
      }
    });
    worker.on('error', (e) => die(new Error(`the stage's compute thread failed: ${e.message}`)));
    worker.on('exit', (code) => die(new Error(`the stage's compute thread exited (code ${code})`)));
  });
  const c = loaded.config, { from, to } = loaded.range, projects = loaded.projects;
  /** Start-up went wrong after loading: the compute thread goes too. */
  const abandon = async (e: Error): Promise<never> => {
    tell({ type: 'close' });
    await worker.terminate();
    throw e;
  };
  const refuseStart = (message: string): Promise<never> => abandon(new RangeError(message));
  if (!projects && !o.next) await refuseStart(`this stage holds layers ${from}:${to} of ${c.nLayers}: it needs --next HOST:PORT, the stage holding layers ${to} on (only the last stage may omit it)`);
  if (projects && o.next) await refuseStart(`this stage holds the last layer (${from}:${to} of ${c.nLayers}): there is no next stage (drop --next)`);
  const identity = modelIdentity(o.modelPath, c);
  const streams = new Set<Duplex>();
  const link = o.next ? new StageLink({
    next: o.next, token: o.token, model: identity, from: to, layers: c.nLayers, numerics, tls: o.tls ?? null,
    ...(o.stepTimeoutMs ? { stepTimeoutMs: o.stepTimeoutMs } : {}),
    onChange: (up, error) => {
      log(up ? `next stage ${link!.name} is up` : `${error}`);
      // The sequences behind this stage are gone: so are the streams that used them.
      if (!up) for (const s of [...streams]) s.destroy(Object.assign(new Error(`${CASCADE}${error}`), { code: grpc.status.UNAVAILABLE, details: `${CASCADE}${error}` }));
    },
  }) : null;
  const me = (address: string): string => `${address} (layers ${from}:${to})`;
  /** Sequence ids on the link behind: one space for every stream into this stage (each numbers its own from 1). */
  let downIds = 0;
  let streamIds = 0;
  let address = o.listen;

  const connect = (call: Duplex): void => {
    streams.add(call);
    const sid = ++streamIds;
    const mine = new Map<number, Settle>();
    waiting.set(sid, mine);
    /** This stream's sequence ids → the ids the next stage knows them by. */
    const ids = new Map<number, number>();
    const down = (id: number): number => {
      let d = ids.get(id);
      if (d === undefined) ids.set(id, d = ++downIds >>> 0);
      return d;
    };
    let welcomed = false;
    let ended = false;
    /** Frames in the order they came (a hello waits for the link). */
    let queue = Promise.resolve();
    /** What goes on to the next stage, in the order of the frames: each step's output, forks, frees. */
    let behind = Promise.resolve();
    const send = (f: Frame): void => { if (!call.destroyed) call.write(f); };
    const refuse = (message: string): void => {
      log(`refused a connection from ${call.getPeer()}: ${message}`);
      send({ refused: { message } });
      call.end();
    };
    const hello = async (h: Extract<Frame, { hello: unknown }>['hello']): Promise<void> => {
      if (!sameToken(h.token, o.token)) return refuse(h.token ? 'wrong --stage-token' : 'this stage needs a --stage-token');
      if (h.model !== identity) return refuse(`model mismatch: the previous stage has ${h.model}, this stage ${identity}`);
      if (h.from !== from) return refuse(`layer mismatch: the previous stage ends at layer ${h.from}, this stage holds layers ${from}:${to}`);
      if (h.numerics !== numerics) return refuse(`numerics mismatch: the previous stage computes with --kernels ${h.numerics}, this stage with ${numerics}`);
      const end = c.nLayers;
      let chain = me(address);
      if (link) {
        try {
          await link.ready(5000);
        } catch (e) {
          return refuse((e as Error).message);
        }
        // The link is up only once the chain behind it was welcomed as ending at the model's last layer.
        chain = `${me(address)} → ${link.status().chain}`;
      }
      welcomed = true;
      const peerCert = call.getAuthContext().sslPeerCertificate;
      log(`serving ${call.getPeer()}${peerCert?.subject?.CN ? ` (certificate CN=${peerCert.subject.CN})` : ''}`);
      send({ welcome: { from, to, end, chain, stages: link ? 1 + link.stages : 1 } });
    };
    const step = (s: Step): void => {
      const computed = dead ? Promise.reject(dead) : new Promise<{ rows: number; out: Uint8Array }>((resolve, reject) => mine.set(s.id, { resolve, reject }));
      if (!dead) tell({ type: 'step', stream: sid, step: s });
      behind = behind.then(() => computed).then((r) => {
        if (projects) { send({ result: { id: s.id, rows: r.rows, logits: r.out } }); return; }
        if (ended) return;
        // Not awaited: the next step's output goes on behind it while this one is on the later stages.
        link!.step({ ...s, seqs: s.seqs.map(down), hidden: r.out }).then(
          (a) => send({ result: { ...a, id: s.id } }),
          (e: Error) => send({ failure: { id: s.id, message: e.message } }),
        );
      }, (e: Error) => send({ failure: { id: s.id, message: e.message } }));
    };
    call.on('data', (f: Frame) => {
      queue = queue.then(async () => {
        if ('hello' in f && f.hello) return hello(f.hello);
        if (!welcomed) return refuse('the first frame must be a hello');
        if ('step' in f && f.step) return step(f.step);
        if ('fork' in f && f.fork) {
          const { from: a, to: b } = f.fork;
          tell({ type: 'fork', stream: sid, from: a, to: b });
          behind = behind.then(() => { if (link && !ended && ids.has(a)) link.fork(down(a), down(b)); });
          return;
        }
        if ('free' in f && f.free) {
          const seqs = f.free.seqs;
          tell({ type: 'free', stream: sid, seqs });
          behind = behind.then(() => {
            link?.free(seqs.flatMap((id) => (ids.has(id) ? [ids.get(id)!] : [])));
            for (const id of seqs) ids.delete(id);
          });
        }
      });
    });
    const gone = (): void => {
      if (!streams.delete(call)) return;
      ended = true;
      waiting.delete(sid);
      // Its steps still computing are dropped (their outputs go nowhere), so that what waits behind them runs.
      for (const p of mine.values()) p.reject(new Error('the stream ended'));
      mine.clear();
      if (!dead) tell({ type: 'gone', stream: sid });
      // After the steps already on their way behind (their outputs are dropped now: ended).
      behind = behind.then(() => { link?.free([...ids.values()]); ids.clear(); });
    };
    call.on('end', () => { gone(); call.end(); });
    call.on('error', gone);
    call.on('close', gone);
  };

  const server = new grpc.Server(CHANNEL_OPTIONS);
  server.addService(stageService().service, { connect });
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(o.listen, serverCredentials(o.tls), (e, p) => (e ? reject(new Error(`cannot listen on ${o.listen}: ${e.message}`)) : resolve(p)));
    });
  } catch (e) {
    link?.close();
    return abandon(e as Error);
  }
  address = o.listen.replace(/:\d+$/, `:${port}`);
  return {
    address, link, config: c, range: loaded.range, backend: loaded.backend, crashed,
    close: async () => {
      link?.close();
      for (const s of streams) s.destroy();
      await new Promise<void>((r) => server.tryShutdown(() => r()));
      worker.removeAllListeners('exit');
      worker.removeAllListeners('error');
      tell({ type: 'close' });
      await new Promise<void>((r) => { worker.once('exit', () => r()); setTimeout(() => void worker.terminate(), 5000).unref(); });
    },
  };
}
