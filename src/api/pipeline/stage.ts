/**
 * A pipeline stage (`grok stage --layers K:L --listen HOST:PORT [--next HOST:PORT]`): a gRPC server whose
 * one method is a bidirectional stream from the stage before it. Each stream owns its sequences' KV caches
 * (for this stage's layers only); frames are handled in order: a step runs this stage's layers on the
 * hidden states it carries, then either applies the final norm and output head (the last stage) or passes
 * the result on through its own link to the next stage and relays the answer back.
 *
 * When the link behind it goes down, every stream into this stage is ended with the link's message, so the
 * leader learns which stage is down and that the sequences behind it are gone; a stream that ends frees its
 * sequences here and behind.
 */
import * as grpc from '@grpc/grpc-js';
import type { GrokModel, KVCache } from '../../model/grok.js';
import { CASCADE, StageLink } from './link.js';
import { bytesF32, CHANNEL_OPTIONS, f32Bytes, modelIdentity, sameToken, stageService, type Frame, type Step } from './protocol.js';
import { serverCredentials, type StageTls } from './tls.js';

export interface StageOptions {
  model: GrokModel;
  /** The model's file or folder (its identity is compared at the handshake). */
  modelPath: string;
  /** HOST:PORT to listen on (port 0: any free port). */
  listen: string;
  /** The next stage, when this one does not hold the last layer. */
  next?: string;
  /** The shared secret peers must present ('' for none). */
  token: string;
  /** Kernel numerics ('exact' / 'fast'): the stage before must compute alike. */
  numerics: string;
  /**
   * Mutual TLS (--stage-tls-*; ./tls.ts): the server takes only peers with a certificate signed by the CA
   * (and no plaintext), and the link to --next shows this certificate. The token is checked on top.
   */
  tls?: StageTls | null;
  stepTimeoutMs?: number;
  /** A line about a peer or the link (default: none). */
  log?: (line: string) => void;
}

export interface RunningStage {
  /** HOST:PORT really bound. */
  readonly address: string;
  readonly link: StageLink | null;
  close(): Promise<void>;
}

type Duplex = grpc.ServerDuplexStream<Frame, Frame>;

export async function startStage(o: StageOptions): Promise<RunningStage> {
  const m = o.model, c = m.config, { from, to } = m.range;
  const identity = modelIdentity(o.modelPath, c);
  const log = o.log ?? (() => undefined);
  if (!m.projects && !o.next) throw new RangeError(`this stage holds layers ${from}:${to} of ${c.nLayers}: it needs --next HOST:PORT, the stage holding layers ${to} on (only the last stage may omit it)`);
  if (m.projects && o.next) throw new RangeError(`this stage holds the last layer (${from}:${to} of ${c.nLayers}): there is no next stage (drop --next)`);
  const streams = new Set<Duplex>();
  const link = o.next ? new StageLink({
    next: o.next, token: o.token, model: identity, from: to, layers: c.nLayers, numerics: o.numerics, tls: o.tls ?? null,
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
  let address = o.listen;

  const connect = (call: Duplex): void => {
    streams.add(call);
    const caches = new Map<number, KVCache>();
    /** This stream's sequence ids → the ids the next stage knows them by. */
    const ids = new Map<number, number>();
    const down = (id: number): number => {
      let d = ids.get(id);
      if (d === undefined) ids.set(id, d = ++downIds >>> 0);
      return d;
    };
    let welcomed = false;
    let queue = Promise.resolve();
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
      if (h.numerics !== o.numerics) return refuse(`numerics mismatch: the previous stage computes with --kernels ${h.numerics}, this stage with ${o.numerics}`);
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
      send({ welcome: { from, to, end, chain } });
    };
    const step = async (s: Step): Promise<void> => {
      try {
        const D = c.dModel;
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
        if (m.projects) {
          send({ result: { id: s.id, rows: out.length / c.vocabSize, logits: f32Bytes(out) } });
          return;
        }
        const r = await link!.step({ ...s, seqs: s.seqs.map(down), hidden: f32Bytes(out) });
        send({ result: { ...r, id: s.id } });
      } catch (e) {
        send({ failure: { id: s.id, message: (e as Error).message } });
      }
    };
    call.on('data', (f: Frame) => {
      queue = queue.then(async () => {
        if ('hello' in f && f.hello) return hello(f.hello);
        if (!welcomed) return refuse('the first frame must be a hello');
        if ('step' in f && f.step) return step(f.step);
        if ('fork' in f && f.fork) {
          const src = caches.get(f.fork.from);
          if (src) caches.set(f.fork.to, src.clone());
          if (link && ids.has(f.fork.from)) link.fork(down(f.fork.from), down(f.fork.to));
          return;
        }
        if ('free' in f && f.free) {
          for (const id of f.free.seqs) caches.delete(id);
          link?.free(f.free.seqs.flatMap((id) => (ids.has(id) ? [ids.get(id)!] : [])));
          for (const id of f.free.seqs) ids.delete(id);
        }
      });
    });
    const gone = (): void => {
      if (!streams.delete(call)) return;
      link?.free([...ids.values()]);
      caches.clear();
      ids.clear();
    };
    call.on('end', () => { gone(); call.end(); });
    call.on('error', gone);
    call.on('close', gone);
  };

  const server = new grpc.Server(CHANNEL_OPTIONS);
  server.addService(stageService().service, { connect });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(o.listen, serverCredentials(o.tls), (e, p) => (e ? reject(new Error(`cannot listen on ${o.listen}: ${e.message}`)) : resolve(p)));
  });
  address = o.listen.replace(/:\d+$/, `:${port}`);
  return {
    address, link,
    close: async () => {
      link?.close();
      for (const s of streams) s.destroy();
      await new Promise<void>((r) => server.tryShutdown(() => r()));
    },
  };
}
