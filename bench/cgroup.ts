/**
 * A model larger than the memory it may use: runs inside a memory cgroup (default 6 GiB) with the model
 * file evicted from the page cache first, so every page the run touches is read and charged inside the
 * limit. Checks that greedy generation gives the same tokens as outside the cgroup and that the exact
 * logits are the same bytes, then times decode inside the cgroup (native and llama.cpp, via
 * bench/decode.js). Needs root (it creates the cgroup; v1 or v2) and GNU dd (page-cache eviction).
 *
 *   node dist/bench/cgroup.js --model slice.gguf [--limit-gib 6] [--threads 2] [--gen 16] [--engines native,llama]
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { evict, makeCgroup, shellArgs, type Cgroup } from './cgroup-util.js';

const { values: opt } = parseArgs({
  options: {
    model: { type: 'string' },
    'limit-gib': { type: 'string', default: '6' },
    threads: { type: 'string', default: '2' },
    gen: { type: 'string', default: '16' },
    engines: { type: 'string', default: 'native,llama' },
  },
});

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
const DECODE = path.join(ROOT, 'dist', 'bench', 'decode.js');
const PROMPT = [1000, 23456, 777, 4242, 99999, 31337, 12, 65000];

/** Run a command, inside `cg` when given (the shell joins the cgroup, then execs the command). */
function run(cmd: string[], cg?: Cgroup): { out: string; err: string; s: number } {
  const t = performance.now();
  const r = spawnSync('sh', shellArgs(cmd, cg), { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} exited ${r.status}: ${r.stderr.slice(-2000)}`);
  return { out: r.stdout, err: r.stderr, s: (performance.now() - t) / 1000 };
}

function main(): void {
  const model = opt.model;
  if (!model || !fs.existsSync(model)) throw new Error('--model <file.gguf> is required');
  const limit = Number(opt['limit-gib']) * 2 ** 30;
  const fileGB = fs.statSync(model).size / 1e9;
  console.log(`# bench/cgroup ${new Date().toISOString()}  ${model} (${fileGB.toFixed(2)} GB) in a ${opt['limit-gib']} GiB memory cgroup, ${opt.threads} threads, ${os.cpus()[0]?.model ?? ''}`);
  const generate = [process.execPath, CLI, 'generate', '--model', model, '--tokens', PROMPT.join(','), '-t', '0', '-n', opt.gen!, '--kernels', 'fast', '--threads', opt.threads!, '--json'];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-cgroup-'));
  const logits = (out: string) => [process.execPath, CLI, 'logits', '--model', model, '--tokens', PROMPT.join(','), '--threads', opt.threads!, '--out', out];
  const cg = makeCgroup(limit);
  try {
    const outside = JSON.parse(run(generate).out) as { tokens: number[]; timings: Record<string, number> };
    run(logits(path.join(tmp, 'outside.f32')));
    evict(model);
    const g = run(generate, cg);
    const inside = JSON.parse(g.out) as { tokens: number[]; timings: Record<string, number> };
    run(logits(path.join(tmp, 'inside.f32')), cg);
    const same = JSON.stringify(inside.tokens) === JSON.stringify(outside.tokens);
    const sameLogits = fs.readFileSync(path.join(tmp, 'inside.f32')).equals(fs.readFileSync(path.join(tmp, 'outside.f32')));
    console.log(`greedy tokens inside = outside: ${same} (${inside.tokens.length} tokens: ${inside.tokens.slice(0, 8).join(',')}…)`);
    console.log(`exact logits of the prompt inside = outside, byte for byte: ${sameLogits}`);
    console.log(`inside: generate ${g.s.toFixed(1)} s (prefill ${(inside.timings.prefillMs! / 1000).toFixed(1)} s, decode ${inside.timings.generatedTokensPerSecond!.toFixed(2)} tok/s); cgroup peak ${(cg.peak() / 2 ** 30).toFixed(2)} GiB`);
    console.log(`outside: decode ${outside.timings.generatedTokensPerSecond!.toFixed(2)} tok/s`);
    for (const engine of opt.engines!.split(',')) {
      evict(model);
      const r = run([process.execPath, DECODE, '--model', model, '--engines', engine, '--threads', opt.threads!, '--prompt', '8', '--gen', opt.gen!], cg);
      const line = r.out.split('\n').find((l) => l.startsWith(engine));
      console.log(`inside, ${line ?? `${engine}: no result\n${r.out}${r.err}`}`);
    }
    if (!same || !sameLogits) process.exitCode = 1;
  } finally {
    cg.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main();
