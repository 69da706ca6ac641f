/**
 * The pipeline's wire format (./stage.proto, loaded by @grpc/proto-loader) as TypeScript types, the
 * model identity both ends of a stream compare at the handshake, and the errors of a broken pipeline.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { GrokConfig } from '../../model/config.js';
import type { LayerRange } from '../../model/grok.js';
import type { MemoryPlan } from '../../model/memory.js';
import type { WorkerLoadOptions } from '../worker/protocol.js';

export interface Hello { token: string; model: string; from: number; numerics: string }
export interface Welcome { from: number; to: number; end: number; chain: string; stages: number }
export interface Step {
  id: number;
  seqs: number[];
  positions: number[];
  counts: number[];
  capacities: number[];
  tokens: number[];
  hidden: Uint8Array;
  lastOnly: boolean;
}
export interface Result { id: number; rows: number; logits: Uint8Array }
export interface Failure { id: number; message: string }
export interface Fork { from: number; to: number }
export interface Free { seqs: number[] }

/** One frame: exactly one of these (proto-loader's `oneofs` adds the name of the one set as `kind`). */
export type Frame =
  | { hello: Hello } | { welcome: Welcome } | { refused: { message: string } } | { step: Step }
  | { result: Result } | { failure: Failure } | { fork: Fork } | { free: Free };

/**
 * Channel options of both ends: no message size limit (a prefill chunk's hidden states exceed gRPC's 4 MiB),
 * keepalive pings to notice a dead peer, and a 16 MiB receive window on the sending side of each link, where
 * the answers arrive (HTTP/2's 64 KiB default would take a round trip per 64 KiB of a micro-batch's logits).
 */
export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc-node.flow_control_window': 16 * 2 ** 20,
  'grpc.max_receive_message_length': -1,
  'grpc.max_send_message_length': -1,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
};

/** The proto next to this file (copied into dist by the build), else the source tree's (running from a checkout's dist without it). */
function protoPath(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const beside = path.join(here, 'stage.proto');
  if (fs.existsSync(beside)) return beside;
  return path.resolve(here, '../../../../src/api/pipeline/stage.proto');
}

type StageClientCtor = new (address: string, creds: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => grpc.Client & {
  connect(): grpc.ClientDuplexStream<Frame, Frame & { kind?: string }>;
};

let loaded: { service: grpc.ServiceDefinition; Client: StageClientCtor } | null = null;

/** The Stage service and its client class (the proto is read once). */
export function stageService(): { service: grpc.ServiceDefinition; Client: StageClientCtor } {
  if (loaded) return loaded;
  const def = protoLoader.loadSync(protoPath(), { keepCase: false, longs: Number, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { grok: { pipeline: { Stage: StageClientCtor & { service: grpc.ServiceDefinition } } } };
  const Stage = pkg.grok.pipeline.Stage;
  loaded = { service: Stage.service, Client: Stage };
  return loaded;
}

/**
 * What both ends must agree on: the model file's name and size, and a hash of its configuration (the
 * context length left out: each side may set its own).
 */
export function modelIdentity(modelPath: string, config: GrokConfig): string {
  const { contextLength: _ctx, ...rest } = config;
  const hash = crypto.createHash('sha256').update(JSON.stringify(rest, Object.keys(rest).sort())).digest('hex').slice(0, 16);
  let size = 0;
  const st = fs.statSync(modelPath);
  if (st.isDirectory()) {
    for (const f of fs.readdirSync(modelPath, { recursive: true }) as string[]) {
      const s = fs.statSync(path.join(modelPath, f));
      if (s.isFile()) size += s.size;
    }
  } else size = st.size;
  return `${path.basename(modelPath)} (${size} bytes, config ${hash})`;
}

/** "K:L" → a layer range (checked against the model later, when its layer count is known). */
export function parseLayers(v: string, flag = '--layers'): LayerRange {
  const m = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(v);
  if (!m) throw new RangeError(`${flag} must be K:L (layers K to L−1, e.g. 0:32), got '${v}'`);
  return { from: Number(m[1]), to: Number(m[2]) };
}

/** "HOST:PORT" checked (IPv6 as [::1]:PORT). */
export function parseAddress(v: string, flag: string): string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(v.trim());
  if (!m || Number(m[2]) > 65535) throw new RangeError(`${flag} must be HOST:PORT (e.g. 10.0.0.2:7070), got '${v}'`);
  return `${m[1]}:${m[2]}`;
}

/** Whether two secrets are equal, in time independent of where they differ. */
export function sameToken(a: string, b: string): boolean {
  const x = crypto.createHash('sha256').update(a).digest(), y = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(x, y);
}

/**
 * A pipeline stage is down, stalled or refused the handshake: the requests of the step fail with it
 * (HTTP 503, src/api/http/errors.ts) and the leader reconnects.
 */
export class StageDownError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StageDownError';
  }
}

/** float32 values as the bytes a frame carries (a view, no copy). */
export function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** A frame's bytes as float32 values (copied: a received Buffer need not be 4-byte aligned). */
export function bytesF32(b: Uint8Array, what: string, expected?: number): Float32Array {
  if (b.byteLength % 4 !== 0 || (expected !== undefined && b.byteLength !== expected * 4)) {
    throw new Error(`${what}: ${b.byteLength} bytes, expected ${expected === undefined ? 'a multiple of 4' : `${expected} float32 values (${expected * 4} bytes)`}`);
  }
  const out = new Float32Array(b.byteLength / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}

/** How a stage's compute thread (./stage-worker.ts) loads its layers (functions and kernel objects stay out). */
export type StageLoadOptions = Pick<WorkerLoadOptions, 'configPath' | 'contextLength' | 'kvType' | 'kernelOptions' | 'ramBudget' | 'expertPolicy' | 'ioThreads'> & { layers: LayerRange };

export interface StageWorkerInit {
  path: string;
  options: StageLoadOptions;
}

/** Stage main thread → compute thread: a stream's step, fork and free, the end of a stream, close. */
export type ToStageWorker =
  | { type: 'step'; stream: number; step: Step }
  | { type: 'fork'; stream: number; from: number; to: number }
  | { type: 'free'; stream: number; seqs: number[] }
  | { type: 'gone'; stream: number }
  | { type: 'close' };

/** Compute thread → stage main thread. `out` is the step's hidden states, or its logits on the last stage. */
export type FromStageWorker =
  | { type: 'memoryPlan'; plan: MemoryPlan }
  | { type: 'loaded'; config: GrokConfig; range: LayerRange; projects: boolean; backend: string }
  | { type: 'loadFailed'; error: { name: string; message: string } }
  | { type: 'out'; stream: number; id: number; rows: number; out: Uint8Array }
  | { type: 'failure'; stream: number; id: number; message: string };
