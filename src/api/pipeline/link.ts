/**
 * One end of a pipeline hop: the long-lived bidirectional gRPC stream from a stage (or the leader) to the
 * next stage. It says hello (token, model identity, first layer, numerics), waits for the welcome, then
 * carries steps, forks and frees. Several steps may be in flight (the leader's micro-batches, at most one per
 * stage: that bounds what the stream holds); each answer names its step.
 *
 * When the stream breaks (the next stage died, stalled past the step timeout, or refused the handshake)
 * every step waiting on it fails with StageDownError naming the stage, the next stage's sequences are gone
 * with it, and the link reconnects with back-off (100 ms doubling to 2 s) until it is welcomed again.
 */
import * as grpc from '@grpc/grpc-js';
import { CHANNEL_OPTIONS, stageService, StageDownError, type Frame, type Result, type Step, type Welcome } from './protocol.js';
import { explainConnectError, linkCredentials, type StageTls } from './tls.js';

export interface LinkOptions {
  /** The next stage, HOST:PORT. */
  next: string;
  /** The shared secret (--stage-token); '' for none. */
  token: string;
  /** modelIdentity() of this side's model. */
  model: string;
  /** The layer the next stage must start at (this side's range end). */
  from: number;
  /** The model's layer count: the chain behind the next stage must end there. */
  layers: number;
  /** Kernel numerics of this side ('exact' / 'fast'). */
  numerics: string;
  /** Mutual TLS (--stage-tls-*; ./tls.ts): this side's certificate and key, and the CA the next stage's certificate must be signed by. */
  tls?: StageTls | null;
  /** A step unanswered this long breaks the link (a stalled stage). Default 300 s. */
  stepTimeoutMs?: number;
  /** Called when the link goes down (after having been up) or comes up. */
  onChange?: (up: boolean, error: string | null) => void;
}

/** What /health shows of the next stage. */
export interface LinkStatus {
  next: string;
  up: boolean;
  /** The stages from the next one on, once welcomed: "HOST:PORT (layers K:L) → …". */
  chain: string | null;
  /** Why it is down. */
  error: string | null;
  /** Connections made (1 after the first welcome; each reconnection adds one). */
  connections: number;
  /** Steps sent and not yet answered, now and at most so far (the leader's micro-batches in the pipe). */
  inFlight: number;
  mostInFlight: number;
}

/** A stage's own stream ended because a stage behind it went down: the message travels up as is. */
export const CASCADE = 'PIPELINE: ';

type Call = grpc.ClientDuplexStream<Frame, Frame>;

export class StageLink {
  private client: grpc.Client | null = null;
  private call: Call | null = null;
  private welcome: Welcome | null = null;
  /** The last welcome's layers (named in messages while the stage is down). */
  private known: Welcome | null = null;
  private error: string | null = 'connecting';
  private connections = 0;
  private mostInFlight = 0;
  private nextId = 1;
  private backoffMs = 100;
  private retry: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly pending = new Map<number, { resolve: (r: Result) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private waiters: { up: () => void; refused: ((e: Error) => void) | null }[] = [];

  constructor(readonly options: LinkOptions) {
    this.connect();
  }

  get up(): boolean {
    return this.welcome !== null && this.call !== null;
  }

  /** "HOST:PORT (layers K:L)" once known. */
  get name(): string {
    return this.known ? `${this.options.next} (layers ${this.known.from}:${this.known.to})` : this.options.next;
  }

  /** The stages from the next one on (1 until welcomed: at least the next one). */
  get stages(): number {
    return Math.max(1, this.known?.stages ?? 1);
  }

  status(): LinkStatus {
    return {
      next: this.options.next, up: this.up, chain: this.welcome?.chain ?? null, error: this.up ? null : this.error, connections: this.connections,
      inFlight: this.pending.size, mostInFlight: this.mostInFlight,
    };
  }

  /**
   * Resolves once the link is up, or rejects with why it is not after `ms` (at the first refusal with
   * `refusal`: a one-off command need not retry what a stage refused).
   */
  async ready(ms: number, opts: { refusal?: boolean } = {}): Promise<void> {
    if (this.up) return;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => { this.waiters = this.waiters.filter((x) => x !== w); reject(new StageDownError(this.downMessage())); }, ms);
      const w = {
        up: (): void => { clearTimeout(t); resolve(); },
        refused: opts.refusal ? (e: Error): void => { clearTimeout(t); this.waiters = this.waiters.filter((x) => x !== w); reject(e); } : null,
      };
      this.waiters.push(w);
    });
  }

  /** One forward pass through the rest of the pipeline: the logits, or StageDownError / the stage's error. */
  step(s: Omit<Step, 'id'>): Promise<Result> {
    if (!this.up) return Promise.reject(new StageDownError(this.downMessage()));
    const id = this.nextId++;
    return new Promise<Result>((resolve, reject) => {
      const ms = this.options.stepTimeoutMs ?? 300_000;
      const timer = setTimeout(() => this.fail(`stage ${this.name} did not answer a step within ${ms / 1000} s (stalled)`), ms);
      this.pending.set(id, { resolve, reject, timer });
      this.mostInFlight = Math.max(this.mostInFlight, this.pending.size);
      this.call!.write({ step: { ...s, id } });
    });
  }

  fork(from: number, to: number): void {
    if (this.up) this.call!.write({ fork: { from, to } });
  }

  free(seqs: number[]): void {
    if (this.up && seqs.length > 0) this.call!.write({ free: { seqs } });
  }

  close(): void {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.fail('the link was closed');
  }

  private downMessage(): string {
    const e = this.error ?? 'connecting';
    return e.startsWith('stage ') ? e : `stage ${this.name} is down: ${e}`;
  }

  private connect(): void {
    this.retry = null;
    if (this.closed) return;
    const { Client } = stageService();
    const { credentials, options } = linkCredentials(this.options.tls, this.options.next);
    const client = new Client(this.options.next, credentials, { ...CHANNEL_OPTIONS, ...options });
    const call = client.connect() as unknown as Call;
    this.client = client;
    this.call = call;
    const o = this.options;
    // The handshake must complete in 10 s (a port that accepts but never answers is down too).
    const handshake = setTimeout(() => { if (this.call === call && !this.welcome) this.fail(`stage ${o.next} did not answer the handshake within 10 s`); }, 10_000);
    call.on('data', (f: Frame) => {
      if (this.call !== call) return;
      if ('welcome' in f && f.welcome) {
        clearTimeout(handshake);
        const w = f.welcome;
        if (w.from !== o.from || w.end !== o.layers) {
          this.fail(w.from !== o.from
            ? `stage ${o.next} holds layers ${w.from}:${w.to}, but this side ends at layer ${o.from}: the next stage must start there`
            : `the pipeline from ${o.next} ends at layer ${w.end}, but the model has ${o.layers} layers: a stage is missing (${w.chain})`, false);
          return;
        }
        this.welcome = w;
        this.known = w;
        this.error = null;
        this.connections++;
        this.backoffMs = 100;
        const ws = this.waiters;
        this.waiters = [];
        for (const w of ws) w.up();
        o.onChange?.(true, null);
      } else if ('refused' in f && f.refused) {
        clearTimeout(handshake);
        this.fail(`stage ${o.next} refused the connection: ${f.refused.message}`, false);
      } else if ('result' in f && f.result) {
        this.settle(f.result.id)?.resolve(f.result);
      } else if ('failure' in f && f.failure) {
        this.settle(f.failure.id)?.reject(new Error(`stage ${this.name}: ${f.failure.message}`));
      }
    });
    call.on('error', (e: grpc.ServiceError) => {
      clearTimeout(handshake);
      if (this.call !== call) return;
      const d = (e.details || e.message).replace(/\.?\s*Resolution note:\s*$/, '');
      // A TLS handshake that failed is a misconfiguration, not an outage: said in words, and a refusal (a one-off command stops waiting).
      const tls = e.code === grpc.status.UNAVAILABLE ? explainConnectError(d, !!o.tls) : null;
      if (tls) this.fail(`stage ${this.name} is down: ${tls}`, false);
      else this.fail(d.startsWith(CASCADE) ? d.slice(CASCADE.length) : `stage ${this.name} is down: ${d}`);
    });
    call.on('end', () => {
      clearTimeout(handshake);
      if (this.call === call) this.fail(`stage ${this.name} is down: it closed the stream`);
    });
    call.write({ hello: { token: o.token, model: o.model, from: o.from, numerics: o.numerics } });
  }

  private settle(id: number): { resolve: (r: Result) => void; reject: (e: Error) => void } | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    clearTimeout(p.timer);
    this.pending.delete(id);
    return p;
  }

  /** The stream is gone: fail what waits on it, drop it, and try again after the back-off. */
  private fail(message: string, named = true): void {
    const wasUp = this.up;
    this.error = named && !message.startsWith('stage ') && !message.startsWith('the ') ? `stage ${this.name} is down: ${message}` : message;
    this.welcome = null;
    const call = this.call, client = this.client;
    this.call = null;
    this.client = null;
    if (call) { call.removeAllListeners('data'); call.on('error', () => undefined); call.cancel(); }
    client?.close();
    const err = new StageDownError(this.error);
    for (const [id, p] of this.pending) { clearTimeout(p.timer); this.pending.delete(id); p.reject(err); }
    if (wasUp) this.options.onChange?.(false, this.error);
    if (!named) for (const w of this.waiters.filter((x) => x.refused)) w.refused!(err);
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => this.connect(), this.backoffMs);
    this.retry.unref();
    this.backoffMs = Math.min(2000, this.backoffMs * 2);
  }
}
