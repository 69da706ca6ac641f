/**
 * Mutual TLS between pipeline stages (`--stage-tls-cert/-key/-ca`, src/api/pipeline/tls.ts), with the
 * committed test certificates of test/data/tls (scripts/make-test-certs.sh): stages in this process
 * (startStage) and links to them (StageLink) as the leader makes them; `grok logits` and `grok serve`
 * spawned once each for their flags. Through TLS the logits are the bytes of one process and within 1e-4
 * of the fixtures' float64 goldens; a peer without a certificate, with one from another CA, in plaintext,
 * or dialling an address the stage's certificate does not carry is refused with a message that says so.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { closeKernels, createKernels } from '../src/kernels/index.js';
import { loadModel } from '../src/model/loader.js';
import type { GrokModel } from '../src/model/grok.js';
import { StageLink } from '../src/api/pipeline/link.js';
import { bytesF32, CHANNEL_OPTIONS, f32Bytes, modelIdentity, stageService } from '../src/api/pipeline/protocol.js';
import { startStage, type RunningStage } from '../src/api/pipeline/stage.js';
import { readStageTls, type StageTls } from '../src/api/pipeline/tls.js';
import { fixtureDir, golden, goldenLogits, maxAbsDiff } from './fixtures.js';

const CLI = path.resolve('dist/src/cli/main.js');
const CERTS = path.resolve('test/data/tls');
const cert = (name: string): string => path.join(CERTS, name);
const A = path.join(fixtureDir('tiny-a'), 'model.gguf'); // 2 layers: split 1 + 1
const B = path.join(fixtureDir('tiny-b'), 'model.gguf'); // 3 layers: split 1 + 1 + 1
const TOKEN = 'pipeline-tls-test-secret';
const EXACT = ['--kernels', 'exact', '--threads', '1'];
const tlsOf = (name: string, ca = 'ca.crt'): StageTls => readStageTls({ cert: cert(`${name}.crt`), key: cert(`${name}.key`), ca: cert(ca) })!;
const TLS_ARGS = ['--stage-tls-cert', cert('client.crt'), '--stage-tls-key', cert('client.key'), '--stage-tls-ca', cert('ca.crt')];

const kernels = createKernels({ kernels: 'auto', mode: 'exact', threads: 1 });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-pipeline-tls-'));
const stages: RunningStage[] = [];
const models: GrokModel[] = [];
const children = new Set<ChildProcess>();

/** `grok args…` → exit code and stderr. */
function grok(...args: string[]): Promise<{ code: number; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000, encoding: 'utf8' }, (e, _out, err) => {
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, err });
    });
  });
}

async function load(file: string, layers?: { from: number; to: number }): Promise<GrokModel> {
  const { model } = await loadModel(file, { kernels, ...(layers ? { layers } : {}) });
  models.push(model);
  return model;
}

/** A stage holding `layers` of `file` (loaded in its own compute thread, as `grok stage` does). */
async function stage(file: string, layers: { from: number; to: number }, tls: StageTls | null, next?: string): Promise<string> {
  const load = { layers, kernelOptions: { kernels: 'auto' as const, mode: 'exact' as const, threads: 1 } };
  const s = await startStage({ modelPath: file, load, listen: '127.0.0.1:0', ...(next ? { next } : {}), token: TOKEN, tls });
  stages.push(s);
  return s.address;
}

/** A link as the leader holding layers 0:`from` of `file` makes it. */
function link(next: string, file: string, leader: GrokModel, tls: StageTls | null): StageLink {
  return new StageLink({ next, token: TOKEN, model: modelIdentity(file, leader.config), from: leader.range.to, layers: leader.config.nLayers, numerics: 'exact', tls });
}

/** Why a link to `next` is refused: the message a one-off command (`grok logits`) fails with. */
async function refusal(l: StageLink): Promise<string> {
  try {
    await l.ready(10_000, { refusal: true });
  } catch (e) {
    return (e as Error).message;
  } finally {
    l.close();
  }
  throw new Error(`the link to ${l.options.next} came up`);
}

/** `grok serve args…`: its URL once it listens, and its stderr so far. */
function serve(args: string[]): Promise<{ url: string; err: () => string }> {
  const child = spawn(process.execPath, [CLI, 'serve', '-p', '0', '--quiet', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  let err = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`grok serve did not start within 30 s:\n${err}`)), 30_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /serving .* on (http:\/\/[\d.:]+)/.exec(err);
      if (m) { clearTimeout(timer); resolve({ url: m[1]!, err: () => err }); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`grok serve exited (${code}):\n${err}`)); });
  });
}

let aLeader: GrokModel, aWhole: GrokModel, bLeader: GrokModel, bWhole: GrokModel;
let aTls = '', bTls = '', aWrongName = '', aPlain = '';
// The processes the tests spawn, started at once in before() so that they load while the others run.
let leaderToWrongName: ReturnType<typeof serve>;
let cliLogits: ReturnType<typeof grok>;
let usage: Promise<{ code: number; err: string }[]>;
const CLI_LOGITS_OUT = path.join(tmp, 'tiny-a-tls.f32');
const USAGE: [string[], RegExp][] = [
  [['stage', '-m', A, '--layers', '1:2', '--listen', '127.0.0.1:0', '--stage-tls-cert', cert('client.crt')], /grok: mutual TLS between stages needs --stage-tls-cert, --stage-tls-key and --stage-tls-ca together: --stage-tls-key and --stage-tls-ca are missing\n$/],
  [['serve', '-m', A, '--stage-tls-ca', cert('ca.crt')], /--stage-tls-\* belong to a pipeline leader: add --layers 0:K --next HOST:PORT/],
];

before(async () => {
  [aLeader, aWhole, bLeader, bWhole] = await Promise.all([load(A, { from: 0, to: 1 }), load(A), load(B, { from: 0, to: 1 }), load(B)]);
  const server = tlsOf('server');
  const a1 = { from: 1, to: 2 };
  // tiny-b's second hop is TLS too: a stage's own link shows its certificate (one for both roles).
  [aTls, bTls, aWrongName, aPlain] = await Promise.all([
    stage(A, a1, server),
    stage(B, { from: 2, to: 3 }, server).then((b2) => stage(B, { from: 1, to: 2 }, server, b2)),
    stage(A, a1, tlsOf('wrong-name')),
    stage(A, a1, null),
  ]);
  usage = Promise.all(USAGE.map(([args]) => grok(...args)));
  cliLogits = grok('logits', '-m', A, '--tokens', golden('tiny-a').tokens.join(','), '--out', CLI_LOGITS_OUT, ...EXACT, '--layers', '0:1', '--next', aTls, '--stage-token', TOKEN, ...TLS_ARGS);
  leaderToWrongName = serve(['-m', A, ...EXACT, '--layers', '0:1', '--next', aWrongName, '--stage-token', TOKEN, ...TLS_ARGS]);
  leaderToWrongName.catch(() => undefined); // awaited by its test
});

after(async () => {
  const exits = [...children].map((c) => new Promise((r) => c.once('exit', r)));
  for (const c of children) c.kill('SIGKILL');
  await Promise.all(exits);
  await Promise.all(stages.map((s) => s.close()));
  for (const m of models) m.close();
  closeKernels(kernels);
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('2 stages (tiny-a) and 3 stages (tiny-b) over mutual TLS: byte-identical exact logits to one process, and the float64 goldens', async () => {
  for (const [name, file, leader, whole, next] of [['tiny-a', A, aLeader, aWhole, aTls], ['tiny-b', B, bLeader, bWhole, bTls]] as const) {
    const g = golden(name);
    const ids = g.tokens;
    const l = link(next, file, leader, tlsOf('client'));
    try {
      await l.ready(10_000, { refusal: true });
      assert.match(l.status().chain!, name === 'tiny-a' ? /\(layers 1:2\)$/ : /\(layers 1:2\) → .*\(layers 2:3\)$/);
      const hidden = leader.forward([{ tokens: ids, cache: leader.newCache(ids.length) }]);
      const r = await l.step({ seqs: [1], positions: [0], counts: [ids.length], capacities: [ids.length], tokens: ids, hidden: f32Bytes(hidden), lastOnly: false });
      const split = bytesF32(r.logits, 'logits', ids.length * whole.config.vocabSize);
      const one = whole.forward([{ tokens: ids, cache: whole.newCache(ids.length) }]);
      assert.ok(maxAbsDiff(split, goldenLogits(name)) < 1e-4, `${name}: within 1e-4 of the golden`);
      assert.deepEqual(Buffer.from(split.buffer), Buffer.from(one.buffer, one.byteOffset, one.byteLength), `${name}: the same bytes as one process`);
    } finally {
      l.close();
    }
  }
  // `grok logits --stage-tls-*` (the CLI's leader) gives the same bytes.
  const g = golden('tiny-a');
  const r = await cliLogits;
  assert.equal(r.code, 0, r.err);
  const one = aWhole.forward([{ tokens: g.tokens, cache: aWhole.newCache(g.tokens.length) }]);
  assert.deepEqual(fs.readFileSync(CLI_LOGITS_OUT), Buffer.from(one.buffer, one.byteOffset, one.byteLength));
});

test('refused: no client certificate, one from another CA, plaintext to a TLS stage, TLS to a plaintext stage', async () => {
  // A client with the CA but no certificate of its own: the stage's TLS asks for one (grpc-js's words).
  const { Client } = stageService();
  const bare = new Client(aTls, grpc.credentials.createSsl(fs.readFileSync(cert('ca.crt'))), { ...CHANNEL_OPTIONS, 'grpc.ssl_target_name_override': 'localhost' });
  const call = bare.connect();
  const e = await new Promise<grpc.ServiceError>((resolve) => {
    call.on('error', resolve);
    call.on('data', () => resolve(Object.assign(new Error('welcomed'), { code: -1, details: 'welcomed', metadata: new grpc.Metadata() })));
    call.write({ hello: { token: TOKEN, model: modelIdentity(A, aLeader.config), from: 1, numerics: 'exact' } });
  });
  bare.close();
  assert.equal(e.code, grpc.status.UNAVAILABLE, e.details);
  assert.match(e.details, /certificate required/);
  const at = aTls.replace(/[.[\]]/g, '\\$&');
  const cases: [string, StageLink, RegExp][] = [
    ['another CA', link(aTls, A, aLeader, tlsOf('other-client')),
      new RegExp(`^stage ${at} is down: TLS handshake failed: it closed the connection on receiving this side's certificate: its --stage-tls-ca must have signed this side's --stage-tls-cert$`)],
    ['plaintext', link(aTls, A, aLeader, null), new RegExp(`^stage ${at} is down: it closed the connection before the gRPC handshake: it may require TLS`)],
    ['TLS to plaintext', link(aPlain, A, aLeader, tlsOf('client')), /is down: TLS handshake failed: it does not speak TLS \(start it with --stage-tls-cert, --stage-tls-key and --stage-tls-ca too, or drop them here\)$/],
    // This side trusts another CA: the stage's certificate is not signed by it.
    ['stage not signed by our CA', link(aTls, A, aLeader, tlsOf('other-client', 'other-ca.crt')), /is down: TLS handshake failed: its certificate is not signed by this side's --stage-tls-ca \(self-signed certificate in certificate chain\)$/],
  ];
  // A port that closes every connection at once (not a stage at all) cuts the TLS handshake short.
  const closer = net.createServer((c) => c.destroy());
  await new Promise<void>((r) => closer.listen(0, '127.0.0.1', r));
  const closerAt = `127.0.0.1:${(closer.address() as net.AddressInfo).port}`;
  cases.push(['closed at once', link(closerAt, A, aLeader, tlsOf('client')),
    /is down: TLS handshake failed: it closed the connection during the handshake \(is it a stage started with --stage-tls-cert, --stage-tls-key and --stage-tls-ca, with a CA that signed this side's certificate\?\)$/]);
  try {
    const messages = await Promise.all(cases.map(([, l]) => refusal(l)));
    messages.forEach((m, i) => assert.match(m, cases[i]![2], cases[i]![0]));
  } finally {
    closer.close();
  }
});

test('a stage dialled by an address its certificate does not carry: the link, /health and the 503 say the certificate does not match', async () => {
  const expected = /stage 127\.0\.0\.1:\d+ is down: TLS handshake failed: its certificate does not match the address it is dialled by \(IP: 127\.0\.0\.1 is not in the cert's list: 10\.9\.8\.7\)/;
  assert.match(await refusal(link(aWrongName, A, aLeader, tlsOf('client'))), expected);
  // The same through `grok serve`'s flags (started in before()).
  const { url, err } = await leaderToWrongName;
  let health: any = null;
  for (const t0 = Date.now(); Date.now() - t0 < 10_000; await new Promise((r) => setTimeout(r, 50))) {
    health = await (await fetch(`${url}/health`)).json();
    if (health.pipeline?.error && health.pipeline.error !== 'connecting') break;
  }
  assert.equal(health.ready, false);
  assert.match(health.pipeline.error, expected);
  const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny-a', prompt: [1, 2], max_tokens: 2 }) });
  assert.equal(r.status, 503);
  const body = (await r.json()) as any;
  assert.equal(body.error.code, 'stage_unavailable');
  assert.match(body.error.message, expected);
  assert.doesNotMatch(err(), /DeprecationWarning|\n\s+at /, 'no warning for a TLS name that is an IP, no stack');
});

test('the TLS flags: all three or none, the files read at start-up with the flag and the file named', async () => {
  const key = cert('client.key'), crt = cert('client.crt'), ca = cert('ca.crt');
  // The commands (a UsageError, exit 2, before the model is loaded; `grok logits` and `grok serve` with the three files above).
  (await usage).forEach((r, i) => {
    assert.equal(r.code, 2, `${USAGE[i]![0].join(' ')}: ${r.err}`);
    assert.match(r.err, USAGE[i]![1]);
    assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
  });
  // What the three commands read, here.
  const files: [Parameters<typeof readStageTls>[0], RegExp][] = [
    [{ cert: crt, key }, /--stage-tls-ca is missing$/],
    [{ cert: crt, key, ca: cert('nope.crt') }, /^--stage-tls-ca .*nope\.crt: no such file$/],
    [{ cert: crt, key, ca: CERTS }, /^--stage-tls-ca .*tls: a folder, not a file$/],
    [{ cert: crt, key: crt, ca }, /^--stage-tls-key .*client\.crt: not a PEM private key/],
    [{ cert: crt, key, ca: key }, /^--stage-tls-ca .*client\.key: not a PEM certificate/],
    [{ cert: crt, key: cert('server.key'), ca }, /^--stage-tls-key .*server\.key is not the key of --stage-tls-cert .*client\.crt$/],
  ];
  for (const [f, re] of files) assert.throws(() => readStageTls(f), { name: 'RangeError', message: re });
  assert.equal(readStageTls({}), null);
});
