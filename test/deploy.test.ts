/**
 * deploy/: the Kubernetes LeaderWorkerSet and Service, the docker compose file and the Dockerfile parse,
 * start the leader and the stages as the pipeline needs (each stage's --next is the one holding the layers
 * after its own, worked out by the same shell the pods run) with mutual TLS from read-only mounted certificates,
 * and name only options the CLI really has.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { program } from '../src/cli/main.js';

const DEPLOY = path.resolve('deploy');
const read = (f: string): any => JSON.parse(fs.readFileSync(path.join(DEPLOY, f), 'utf8'));

/** Every --option of `grok <command> …` in argv exists on that command (commander's own table). */
function checkFlags(argv: readonly string[], where: string): void {
  const cmd = program().commands.find((c) => c.name() === argv[0]);
  assert.ok(cmd, `${where}: no command 'grok ${argv[0]}'`);
  const longs = new Set(cmd.options.map((o) => o.long));
  for (const a of argv.slice(1)) {
    if (!a.startsWith('--')) continue;
    assert.ok(longs.has(a.split('=')[0]!), `${where}: 'grok ${argv[0]}' has no option ${a}`);
  }
}

/** The argv after `main.js` of the script's exec line, as the shell expands it with these variables. */
function scriptArgv(script: string, env: Record<string, string>): string[] {
  const shown = script.replace(/exec node \/app\/dist\/src\/cli\/main\.js/, 'for a in');
  const out = execFileSync('sh', ['-c', `${shown}; do printf '%s\\n' "$a"; done`], { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' });
  return out.split('\n').filter((x) => x.length > 0);
}

const flag = (argv: string[], name: string): string | undefined => { const i = argv.indexOf(name); return i < 0 ? undefined : argv[i + 1]; };

/** The three --stage-tls-* files of argv, each inside `folder`. */
function checkTls(argv: string[], folder: string, where: string): void {
  for (const f of ['--stage-tls-cert', '--stage-tls-key', '--stage-tls-ca']) {
    const file = flag(argv, f);
    assert.ok(file !== undefined && path.posix.dirname(file) === folder, `${where}: ${f} ${file} is not in ${folder}`);
  }
}

test('the LeaderWorkerSet starts grok serve on the leader and a chain of grok stage on the workers covering every layer once', () => {
  const lws = read('k8s/leaderworkerset.json');
  assert.equal(lws.kind, 'LeaderWorkerSet');
  assert.equal(lws.apiVersion, 'leaderworkerset.x-k8s.io/v1');
  const t = lws.spec.leaderWorkerTemplate;
  const size: number = t.size;
  // A stage that dies is restarted alone (the leader reconnects), not the whole group with it.
  assert.equal(t.restartPolicy, 'None');
  const leader = t.leaderTemplate.spec.containers[0], worker = t.workerTemplate.spec.containers[0];
  assert.equal(leader.livenessProbe.httpGet.path, '/health');
  assert.equal(leader.readinessProbe.httpGet.path, '/ready');
  const addr = 'grok-0.grok.default';
  const lead = scriptArgv(leader.args[0], { LWS_LEADER_ADDRESS: addr, LWS_GROUP_SIZE: String(size), LWS_WORKER_INDEX: '0' });
  assert.equal(lead[0], 'serve');
  checkFlags(lead, 'leader');
  assert.equal(flag(lead, '--next'), 'grok-0-1.grok.default:7070');
  // Mutual TLS on every hop, the certificates from a Secret mounted read-only.
  const tlsVolume = (c: any, pod: any): string => {
    const m = c.volumeMounts.find((v: any) => pod.spec.volumes.some((x: any) => x.name === v.name && x.secret));
    assert.ok(m?.readOnly, 'a Secret mounted read-only');
    return m.mountPath;
  };
  checkTls(lead, tlsVolume(leader, t.leaderTemplate), 'leader');
  const ranges = [flag(lead, '--layers')!];
  for (let i = 1; i < size; i++) {
    const argv = scriptArgv(worker.args[0], { LWS_LEADER_ADDRESS: addr, LWS_GROUP_SIZE: String(size), LWS_WORKER_INDEX: String(i) });
    assert.equal(argv[0], 'stage');
    checkFlags(argv, `worker ${i}`);
    assert.equal(flag(argv, '--next'), i < size - 1 ? `grok-0-${i + 1}.grok.default:7070` : undefined, `worker ${i}'s next stage`);
    assert.equal(flag(argv, '--listen'), '0.0.0.0:7070');
    checkTls(argv, tlsVolume(worker, t.workerTemplate), `worker ${i}`);
    ranges.push(flag(argv, '--layers')!);
  }
  // Contiguous from 0 to Grok-1's 64 layers.
  let at = 0;
  for (const r of ranges) {
    const [k, l] = r.split(':').map(Number);
    assert.equal(k, at, `ranges ${ranges.join(' ')}`);
    assert.ok(l! > k!);
    at = l!;
  }
  assert.equal(at, 64);
  // The model from a read-only volume on every pod, the stage token from a secret.
  for (const c of [leader, worker]) {
    assert.ok(c.volumeMounts.some((v: any) => v.mountPath === '/models' && v.readOnly));
    assert.ok(c.env.some((e: any) => e.name === 'GROK_STAGE_TOKEN' && e.valueFrom.secretKeyRef));
    assert.ok(/^\d+Gi$/.test(c.resources.requests.memory));
  }
  const svc = read('k8s/service.json');
  assert.equal(svc.kind, 'Service');
  assert.equal(svc.spec.ports[0].targetPort, leader.ports[0].containerPort);
  assert.equal(svc.spec.selector.role, t.leaderTemplate.metadata.labels.role);
});

test('docker compose: a leader and a stage that find each other by service name, with options the CLI has', () => {
  const c = read('compose/compose.json');
  const { leader, stage1 } = c.services;
  checkFlags(leader.command, 'compose leader');
  checkFlags(stage1.command, 'compose stage1');
  assert.equal(flag(leader.command, '--next'), `stage1:${flag(stage1.command, '--listen')!.split(':')[1]}`);
  assert.equal(flag(leader.command, '--layers'), '0:1');
  assert.equal(flag(stage1.command, '--layers'), '1:2');
  for (const [name, s] of [['leader', leader], ['stage1', stage1]] as const) {
    const tls = (s.volumes as string[]).find((v) => v.endsWith(':/tls:ro'));
    assert.ok(tls, `${name}: a read-only /tls folder`);
    checkTls(s.command, '/tls', name);
  }
  // The image's entrypoint is the CLI the build produces.
  const docker = fs.readFileSync(path.join(DEPLOY, 'Dockerfile'), 'utf8');
  const entry = /ENTRYPOINT \["node", "\/app\/(dist\/src\/cli\/main\.js)"\]/.exec(docker);
  assert.ok(entry && fs.existsSync(path.resolve(entry[1]!)), 'ENTRYPOINT runs dist/src/cli/main.js');
  assert.equal(stage1.build.dockerfile, 'deploy/Dockerfile');
});

test('grok plan: contiguous ranges balanced by bytes within each machine\'s budget, the ends holding the embedding and the head', async () => {
  const { planSplit, parseMachines, budgetOf } = await import('../src/api/pipeline/plan.js');
  const { parseSize } = await import('../src/cli/options.js');
  const { layerSizes, weightSizes } = await import('../src/model/loader.js');
  const GiB = 2 ** 30;
  assert.deepEqual(parseMachines('2x64G,1x128G', parseSize), [64 * GiB, 64 * GiB, 128 * GiB]);
  assert.throws(() => parseMachines('4x', parseSize));
  // 8 layers of 10 GiB, a 2 GiB tied embedding on both ends: on 4 × 64 GiB (57.6 GiB budgets), 2 layers each.
  const s = { layers: Array(8).fill(10 * GiB), embedding: 2 * GiB, head: 2 ** 20, tied: true };
  const plan = planSplit(s, [64 * GiB, 64 * GiB, 64 * GiB, 64 * GiB])!;
  assert.deepEqual(plan.map((p) => `${p.from}:${p.to}`), ['0:2', '2:4', '4:6', '6:8']);
  assert.equal(plan[0]!.bytes, 22 * GiB);
  assert.equal(plan[3]!.bytes, 22 * GiB + 2 ** 20);
  assert.ok(plan.every((p) => p.bytes <= p.budget && p.budget === budgetOf(p.memory)));
  // A bigger machine takes more layers (the fullest share relative to its budget is least: 72 of 115.2 GiB
  // and 12 of 28.8, against 62 and 22 for 0:6 + 6:8); too little memory in all is refused.
  assert.deepEqual(planSplit(s, [128 * GiB, 32 * GiB])!.map((p) => `${p.from}:${p.to}`), ['0:7', '7:8']);
  assert.equal(planSplit(s, [32 * GiB, 32 * GiB]), null);
  // On a real file: the stages' bytes add up to the loader's total (the tied embedding counted on both ends).
  const model = path.resolve('test/data/fixtures/tiny-b/model.gguf');
  const sizes = layerSizes(model);
  const real = planSplit(sizes, [GiB * 2, GiB * 2, GiB * 2])!;
  assert.deepEqual(real.map((p) => `${p.from}:${p.to}`), ['0:1', '1:2', '2:3']);
  assert.equal(real.reduce((a, p) => a + p.bytes, 0), weightSizes(model).totalBytes + sizes.embedding);
  const cmd = program().commands.find((c) => c.name() === 'plan')!;
  assert.ok(cmd.options.some((o) => o.long === '--machines'));
});
