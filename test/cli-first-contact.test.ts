/**
 * What a new user types, as the first-contact issue listed it: escapes in --stop and prompts, negative
 * numbers as values, "did you mean", --version, `grok help <command>`, llama.cpp's spellings, a prompt from
 * stdin or a file, a folder holding one .gguf, inspect/logits on the embedded model, `logits --out`
 * saying what it wrote, a training recipe whose paths are relative to it and that installs nothing, and
 * the package shipping neither tests nor benchmarks; a warning for -c above the trained context and
 * --threads above the CPUs.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { grok } from './cli-helpers.js';
import { fixtureDir, golden } from './fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-first-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const CLI = path.resolve('dist/src/cli/main.js');
const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8')) as { version: string };

/** `grok generate --json …` on the embedded model, exact kernels (deterministic). */
async function generateJson(...args: string[]): Promise<{ text: string; tokens: number[]; finishReason: string }> {
  const r = await grok('generate', '--json', '--kernels', 'exact', '-t', '0', ...args);
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out) as { text: string; tokens: number[]; finishReason: string };
}

test('--stop "\\n" (backslash-n as typed in a shell) stops at the first newline, as llama.cpp interprets escapes', async () => {
  const free = await generateJson('-n', '48', 'And God said');
  const nl = free.text.indexOf('\n');
  assert.ok(nl > 0, `the continuation has a newline: ${JSON.stringify(free.text)}`);
  const stopped = await generateJson('-n', '48', '--stop', '\\n', 'And God said');
  assert.equal(stopped.text, free.text.slice(0, nl));
  assert.equal(stopped.finishReason, 'stop');
  // --no-escape: the two characters backslash and n, which never occur here.
  const literal = await generateJson('-n', '48', '--no-escape', '--stop', '\\n', 'And God said');
  assert.equal(literal.text, free.text);
  // In the prompt too: "\t" typed in the shell is a tab.
  const tab = await generateJson('-n', '4', '-p', 'And\\tGod');
  const realTab = await generateJson('-n', '4', '-p', 'And\tGod');
  assert.deepEqual(tab.tokens, realTab.tokens);
});

test('wrong command lines: negative values, typos, unknown commands — one grok: line, exit 2', async () => {
  let r = await grok('generate', '--temperature', '-1', 'x');
  assert.equal(r.code, 2);
  assert.equal(r.err.split('\n')[0], "grok: --temperature must be a number ≥ 0, got '-1'");
  r = await grok('generate', '--presence-penalty', '-1.5', '-n', '1', '--kernels', 'exact', '--json', 'x');
  assert.equal(r.code, 0, `a negative value is a value: ${r.err}`);
  r = await grok('generate', '--temperatur', '1', 'x');
  assert.equal(r.code, 2);
  assert.match(r.err, /^grok: unknown option '--temperatur'\n\(Did you mean --temperature\?\)/);
  r = await grok('serv');
  assert.equal(r.code, 2);
  assert.match(r.err, /^grok: unknown command 'serv'\n\(Did you mean serve\?\)/);
});

test('--version and grok help <command>', async () => {
  let r = await grok('--version');
  assert.deepEqual([r.code, r.out], [0, `${pkg.version}\n`]);
  r = await grok('help', 'generate');
  assert.equal(r.code, 0);
  assert.match(r.out, /^Usage: grok generate \[options\] \[prompt\.\.\.\]/);
  for (const flag of ['--top-p', '--temp <t>', '--ctx-size', '--no-escape', '--routing']) assert.ok(r.out.includes(flag), flag);
  r = await grok('help', 'serve');
  assert.match(r.out, /^Usage: grok serve/);
  assert.ok(r.out.includes('--api-key'));
  r = await grok('help');
  for (const c of ['generate', 'serve', 'convert', 'inspect', 'info', 'train']) assert.match(r.out, new RegExp(`\\n  ${c}\\b`));
});

test('llama.cpp spellings: -p, -f, - (stdin), --temp, -n, -c, -s give the same continuation', async () => {
  const ref = await generateJson('-n', '6', 'In the beginning');
  assert.deepEqual((await generateJson('--n-predict', '6', '-p', 'In the beginning')).tokens, ref.tokens);
  const f = path.join(tmp, 'prompt.txt');
  fs.writeFileSync(f, 'In the beginning');
  assert.deepEqual((await generateJson('-n', '6', '-f', f)).tokens, ref.tokens);
  const stdin = execFileSync(process.execPath, [CLI, 'generate', '--json', '--kernels', 'exact', '--temp', '0', '-n', '6', '-s', '1', '-c', '64', '-'], { input: 'In the beginning', encoding: 'utf8' });
  assert.deepEqual((JSON.parse(stdin) as { tokens: number[] }).tokens, ref.tokens);
  // -c bounds the context: a prompt that does not fit is refused
  const r = await grok('generate', '-c', '3', '--kernels', 'exact', 'In the beginning God created the heaven');
  assert.equal(r.code, 1);
  assert.match(r.err, /\ngrok: prompt has \d+ tokens but the context holds 3 \(at least one must remain/);
});

test('a folder holding one .gguf is a model; a folder holding two is refused by name', async () => {
  const one = path.join(tmp, 'one');
  fs.mkdirSync(one);
  fs.copyFileSync(path.join(fixtureDir('tiny-a'), 'model.gguf'), path.join(one, 'tiny-a.gguf'));
  const g = golden('tiny-a');
  const r = await grok('logits', '-m', one, '--tokens', g.tokens.join(','), '--top', '1', '--json');
  assert.equal(r.code, 0, r.err);
  const top1 = (JSON.parse(r.out) as { positions: { top: { id: number }[] }[] }).positions.map((p) => p.top[0]!.id);
  assert.deepEqual(top1, g.top5.map((t) => t[0]));
  fs.copyFileSync(path.join(fixtureDir('tiny-a'), 'model.gguf'), path.join(one, 'other.gguf'));
  const two = await grok('inspect', one);
  assert.equal(two.code, 1);
  assert.match(two.err, /holds 2 GGUF models \(other\.gguf, tiny-a\.gguf\): name the file to use/);
});

test('inspect and logits work on the embedded model; logits --out says what it wrote', async () => {
  let r = await grok('inspect');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^format: gguf\npath: {3}.*models\/default\/model\.gguf/);
  const out = path.join(tmp, 'l.f32');
  r = await grok('logits', '--tokens', '5,6,7', '--out', out);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, '');
  assert.match(r.err, /^grok: wrote 3 × 2048 float32 logits \(24576 bytes\) to .*l\.f32\n$/);
  assert.equal(fs.statSync(out).size, 3 * 2048 * 4);
});

test('grok train: recipe paths are relative to the recipe, a missing prepare tool is named (never installed), --data trains on a file', async () => {
  const dir = path.join(tmp, 'recipe');
  fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
  const text = fs.readFileSync('models/default/val-excerpt.txt', 'utf8');
  const recipe = {
    name: 'relative', data: { train: 'data/train.txt', val: 'data/val.txt', prepare: 'prepare.sh' }, tokenizer: { vocab_size: 400 },
    model: { emb_size: 16, num_layers: 1, num_q_heads: 2, num_kv_heads: 1, key_size: 8, ffn_size: 16, num_experts: 2, num_selected_experts: 1, sequence_len: 16 },
    train: { seed: 1, batch_size: 1, seq_len: 16, steps: 2, lr: 0.01, min_lr: 0.001, warmup: 1, weight_decay: 0, beta1: 0.9, beta2: 0.95, eps: 1e-8, grad_clip: 1, aux_coef: 0.01, eval_every: 0, eval_tokens: 32, checkpoint_every: 2 },
  };
  fs.writeFileSync(path.join(dir, 'train.json'), JSON.stringify(recipe));
  // The prepare script stands in for one whose system package is missing: it must say so, not install it.
  fs.writeFileSync(path.join(dir, 'prepare.sh'), 'echo "prepare: the tool is missing: apt-get install it-yourself" >&2; exit 1\n');
  const cwd = os.tmpdir(); // not the recipe's folder: its paths must still resolve
  let r = spawnSync(process.execPath, [CLI, 'train', '--config', path.join(dir, 'train.json'), '--work', path.join(dir, 'work'), '--no-progress'], { cwd, encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /preparing data: bash .*recipe\/prepare\.sh .*recipe\/data/);
  assert.match(r.stderr, /prepare: the tool is missing/);
  assert.match(r.stderr, /grok: .*train\.json: the prepare script .*prepare\.sh failed \(exit 1\); see its message above, or pass a text file with --data/);
  // With the data in place (relative to the recipe), it trains from another working directory.
  fs.writeFileSync(path.join(dir, 'data', 'train.txt'), text.slice(0, 2500));
  fs.writeFileSync(path.join(dir, 'data', 'val.txt'), text.slice(2500));
  r = spawnSync(process.execPath, [CLI, 'train', '--config', path.join(dir, 'train.json'), '--work', path.join(dir, 'work'), '--no-progress'], { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(fs.existsSync(path.join(dir, 'model.gguf')), 'the output defaults to the recipe\'s folder');
  // --data: one text file, its last 5 % of lines for validation.
  const data = path.join(tmp, 'corpus.txt');
  fs.writeFileSync(data, text);
  r = spawnSync(process.execPath, [CLI, 'train', '--config', path.join(dir, 'train.json'), '--data', data, '--out', path.join(dir, 'out2'), '--work', path.join(dir, 'work2'), '--no-progress'], { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const lines = text.split('\n').length;
  assert.match(r.stderr, new RegExp(`data: .*corpus\\.txt: ${Math.floor(lines * 0.95)} lines for training, ${lines - Math.floor(lines * 0.95)} for validation`));
});

test('the package ships the library, the CLI, the kernels, the page and the default model — no tests, no benchmarks', () => {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const files = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
  for (const f of ['dist/src/index.js', 'dist/src/cli/main.js', 'dist/kernels.wasm', 'models/default/model.gguf', 'package.json', 'README.md']) assert.ok(files.includes(f), f);
  assert.ok(files.some((f) => f.startsWith('dist/web/')), 'the web page');
  assert.deepEqual(files.filter((f) => /^(dist\/)?(test|bench)\//.test(f)), []);
  // `import … from 'grok-ts'` resolves through "exports" (here by the package's self-reference).
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', "import { loadModel, Tokenizer } from 'grok-ts'; console.log(typeof loadModel, typeof Tokenizer);"], { encoding: 'utf8' });
  assert.equal(out, 'function function\n');
});

test('-c above the trained context and --threads above the CPUs: one warning line each on stderr, generate and serve go on', async () => {
  // The context the embedded model was trained with, from its training recipe (not from the loader).
  const trained = (JSON.parse(fs.readFileSync('models/default/train.json', 'utf8')) as { model: { sequence_len: number } }).model.sequence_len;
  const cpus = os.availableParallelism();
  const threads = cpus < 256 ? ['--threads', String(cpus + 1)] : []; // --threads stops at 256
  const warningsOf = (err: string) => err.split('\n').filter((l) => /warning/i.test(l));
  const check = (err: string) => {
    const w = warningsOf(err);
    assert.equal(w.length, threads.length ? 2 : 1, err);
    for (const l of w) assert.match(l, /^grok: warning: /);
    assert.ok(w.some((l) => l.includes(`--ctx-size ${trained * 2} is more than the ${trained} tokens this model was trained on`)), err);
    if (threads.length) assert.ok(w.some((l) => l.includes(`--threads ${cpus + 1} is more than the ${cpus} CPUs`)), err);
  };
  const r = await grok('generate', '-c', String(trained * 2), ...threads, '-n', '3', '-t', '0', 'And God said');
  assert.equal(r.code, 0, r.err);
  assert.ok(r.out.length > 0);
  check(r.err);
  // Within the limits: no warning.
  const ok = await grok('generate', '-c', String(trained), '--threads', '1', '-n', '3', '-t', '0', 'And God said');
  assert.equal(ok.code, 0, ok.err);
  assert.deepEqual(warningsOf(ok.err), []);
  // grok serve says the same, then serves.
  const child = spawn(process.execPath, [CLI, 'serve', '-c', String(trained * 2), ...threads, '--port', '0', '--quiet'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  try {
    const end = Date.now() + 30_000;
    while (!/serving .* on http:\/\//.test(err) && Date.now() < end && child.exitCode === null) await new Promise((res) => setTimeout(res, 50));
    assert.match(err, /serving .* on http:\/\//);
    check(err);
  } finally {
    child.kill('SIGINT');
    await new Promise((res) => child.once('exit', res));
  }
});
