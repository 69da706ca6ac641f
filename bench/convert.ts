/**
 * `grok convert` throughput, MB/s of output (wall clock, the output file's bytes over the whole command:
 * reading, dequantising, quantising, writing, fsync), on Grok-1-width sources:
 *
 *   ckpt-q8_0   the released checkpoint's int8 form → Q8_0  (source: `grok synth --form ckpt-0`, one layer)
 *   q4_k, q6_k  the 2-layer Q8_0 slice (`grok synth --preset grok1 --layers 2 --type q8_0`) → Q4_K, Q6_K
 *   iq4_xs      the slice → IQ4_XS (optional case)
 *   Q4_K_M      the slice → llama.cpp's Q4_K_M mixture (optional case)
 *
 * Peers, on the same source and output type:
 *   - llama.cpp's own quantiser, llama_model_quantize from the libllama node-llama-cpp ships (node-llama-cpp
 *     ships no llama-quantize program; test/data/quant-ref/model-quantize.c is its core: pure types,
 *     --requantize, the same thread count), built here against the llama.cpp headers of node-llama-cpp's
 *     bundled source. llama.cpp cannot read the checkpoint form: that case has no llama.cpp peer.
 *   - the disk: `cp` of our output file plus fsync — the same bytes written with no work at all.
 * Each command runs in its own process under /usr/bin/time (wall, user, sys, peak RSS).
 *
 *   node dist/bench/convert.js [--slice .bench-out/slice-q8_0.gguf] [--ckpt DIR] [--cases ckpt-q8_0,q4_k,q6_k]
 *                              [--threads 2] [--peer auto|off] [--out-dir .bench-out] [--ckpt-vocab 8192]
 *
 * Without --ckpt, a one-layer Grok-1-width checkpoint (vocab --ckpt-vocab, ≈ 5 GB) is written into
 * --out-dir/ckpt-slice once and reused. Outputs are deleted after each case.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { RECIPES } from '../src/convert/recipes.js';
import { GROK1 } from '../src/model/config.js';
import { synthCheckpoint } from '../src/convert/synth.js';

const { values: opt } = parseArgs({
  options: {
    slice: { type: 'string', default: '.bench-out/slice-q8_0.gguf' },
    ckpt: { type: 'string' },
    cases: { type: 'string', default: 'ckpt-q8_0,q4_k,q6_k' },
    threads: { type: 'string', default: '2' },
    peer: { type: 'string', default: 'auto' },
    'out-dir': { type: 'string', default: '.bench-out' },
    'ckpt-vocab': { type: 'string', default: '8192' },
  },
});
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
const OUT = path.resolve(opt['out-dir']!);
const THREADS = Number(opt.threads);
fs.mkdirSync(OUT, { recursive: true });

interface Run { wall: number; user: number; sys: number; rssMB: number; bytes: number; note?: string }

/** Runs argv under /usr/bin/time; the output file's size is the bytes produced. */
function timed(argv: string[], out: string, env: NodeJS.ProcessEnv = process.env): Run {
  const tf = path.join(OUT, 'time.txt');
  const r = spawnSync('/usr/bin/time', ['-o', tf, '-f', '%e %U %S %M', ...argv], { encoding: 'utf8', env, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}):\n${(r.stderr ?? '').slice(-2000)}`);
  const [wall, user, sys, rss] = fs.readFileSync(tf, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  return { wall: wall!, user: user!, sys: sys!, rssMB: rss! / 1024, bytes: fs.statSync(out).size };
}

const mbps = (r: Run) => r.bytes / r.wall / 1e6;
const fmt = (r: Run) => `${mbps(r).toFixed(0).padStart(5)} MB/s  ${r.wall.toFixed(1).padStart(6)} s wall  ${(r.user + r.sys).toFixed(1).padStart(6)} CPU s (${((100 * (r.user + r.sys)) / r.wall).toFixed(0)} %)  ${r.rssMB.toFixed(0).padStart(5)} MB RSS`;

/** llama.cpp's quantiser: model-quantize.c linked against node-llama-cpp's libllama (headers from its bundled source). */
function buildPeer(): { bin?: string; why?: string } {
  if (opt.peer === 'off') return { why: 'off (--peer off)' };
  const bins = path.join(ROOT, 'peer', 'node_modules', '@node-llama-cpp', `${process.platform}-${process.arch}`, 'bins', `${process.platform}-${process.arch}`);
  const altBins = path.join(ROOT, 'node_modules', '@node-llama-cpp', `${process.platform}-${process.arch}`, 'bins', `${process.platform}-${process.arch}`);
  const lib = [bins, altBins].find((d) => fs.existsSync(d));
  if (!lib) return { why: 'node-llama-cpp\'s prebuilt binaries are not installed' };
  const shipped = fs.readdirSync(lib);
  if (shipped.some((f) => /quantize/.test(f))) return { why: `a quantize program ships in ${lib}, but this bench drives llama_model_quantize itself` };
  const libllama = shipped.find((f) => /^libllama\.v[\d.]+\.so$/.test(f) || f === 'libllama.so');
  const libggml = shipped.find((f) => /^libggml\.v[\d.]+\.so$/.test(f) || f === 'libggml.so');
  if (!libllama || !libggml) return { why: `no libllama / libggml in ${lib}` };
  const bundle = [path.join(ROOT, 'peer', 'node_modules', 'node-llama-cpp', 'llama', 'gitRelease.bundle'), path.join(ROOT, 'node_modules', 'node-llama-cpp', 'llama', 'gitRelease.bundle')].find((f) => fs.existsSync(f));
  const src = path.join(OUT, 'llama-src');
  if (!fs.existsSync(path.join(src, 'include', 'llama.h'))) {
    if (!bundle) return { why: 'node-llama-cpp\'s llama.cpp source bundle (llama.h) is not installed' };
    fs.rmSync(src, { recursive: true, force: true });
    const g = spawnSync('git', ['clone', '-q', bundle, src], { encoding: 'utf8' });
    if (g.status !== 0) return { why: `git clone of the llama.cpp bundle failed: ${g.stderr?.trim() ?? g.error?.message}` };
  }
  const bin = path.join(OUT, 'model-quantize');
  const c = spawnSync(process.env.CC ?? 'cc', ['-O2', `-I${src}/include`, `-I${src}/ggml/include`, '-o', bin, path.join(ROOT, 'test', 'data', 'quant-ref', 'model-quantize.c'),
    path.join(lib, libllama), path.join(lib, libggml), path.join(lib, 'libggml-base.so'), `-Wl,-rpath,${lib}`], { encoding: 'utf8' });
  if (c.status !== 0) return { why: `building model-quantize failed: ${(c.stderr ?? c.error?.message ?? '').trim().split('\n')[0]}` };
  return { bin };
}

/** `cp` of a file plus fsync: what writing those bytes costs with no conversion. */
function diskCopy(file: string): Run {
  const dst = path.join(OUT, 'copy.bin');
  const r = timed(['sh', '-c', `cp "$0" "$1" && sync -f "$1"`, file, dst], dst);
  fs.rmSync(dst);
  return r;
}

const flags = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:\s*(.*)$/m)?.[1] ?? '').split(' ');
const shown = ['avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl', 'avx512dq', 'avx512_vnni', 'avx512_bf16', 'neon', 'asimddp'].filter((f) => flags.includes(f));
console.log(`grok convert throughput; ${os.cpus()[0]?.model} × ${os.availableParallelism()} (flags: ${shown.join(' ')}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, node ${process.version}, --threads ${THREADS}; load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);

const cases = opt.cases!.split(',');
const peer = cases.some((c) => c !== 'ckpt-q8_0') ? buildPeer() : { why: 'not needed' };
console.log(peer.bin ? `peer: llama.cpp's llama_model_quantize (${peer.bin}, pure types, --requantize, ${THREADS} threads)` : `peer: llama.cpp's quantiser not run: ${peer.why}; node-llama-cpp ships no llama-quantize program`);

let ckpt = opt.ckpt;
if (cases.includes('ckpt-q8_0') && !ckpt) {
  ckpt = path.join(OUT, 'ckpt-slice');
  if (!fs.existsSync(path.join(ckpt, 'config.json'))) {
    fs.rmSync(ckpt, { recursive: true, force: true });
    const t0 = performance.now();
    const bytes = synthCheckpoint({ config: { ...GROK1, nLayers: 1, vocabSize: Number(opt['ckpt-vocab']) }, dir: ckpt, seed: 1 });
    console.log(`wrote the ckpt-0 source ${ckpt}: ${(bytes / 1e9).toFixed(2)} GB in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
}

console.log('\ncase            source → output                      ours                                                    llama.cpp / cp');
for (const c of cases) {
  const src = c === 'ckpt-q8_0' ? ckpt! : path.resolve(opt.slice!);
  if (!fs.existsSync(src)) throw new Error(`${src}: missing (see the header for how to make it)`);
  const type = c === 'ckpt-q8_0' ? 'q8_0' : c;
  const out = path.join(OUT, `bench-convert-${c}.gguf`);
  const ours = timed([process.execPath, CLI, 'convert', src, '--type', type, '--threads', String(THREADS), '--out', out], out);
  const copy = diskCopy(out);
  fs.rmSync(out);
  let lc: Run | undefined;
  // a plain type: llama.cpp's ftype of that base type with pure = true (every matrix that type, as ours);
  // a mixture name (Q4_K_M …): the mixture, --mixed
  const pure: Record<string, number> = { q8_0: 7, q4_0: 2, q4_1: 3, q5_0: 8, q5_1: 9, q2_k: 10, q3_k: 11, q4_k: 14, q5_k: 16, q6_k: 18, iq4_nl: 25, iq4_xs: 30, f16: 1, bf16: 32 };
  const recipe = RECIPES[type.toUpperCase()];
  const ftype = pure[type] ?? recipe?.ftype;
  if (peer.bin && c !== 'ckpt-q8_0' && ftype !== undefined) {
    const lout = path.join(OUT, `bench-convert-${c}-llama.gguf`);
    lc = timed([peer.bin, src, lout, String(ftype), '--requantize', '--nthread', String(THREADS), ...(pure[type] === undefined ? ['--mixed'] : [])], lout);
    fs.rmSync(lout);
  }
  console.log(`${c.padEnd(15)} ${path.basename(src)} → ${type} (${(ours.bytes / 1e9).toFixed(2)} GB)`.padEnd(52) + ` ${fmt(ours)}`);
  if (lc) console.log(`${''.padEnd(52)} llama.cpp: ${fmt(lc)}   ours/llama.cpp ${(mbps(ours) / mbps(lc)).toFixed(2)}×`);
  else if (c === 'ckpt-q8_0') console.log(`${''.padEnd(52)} llama.cpp: — (no reader for the checkpoint form)`);
  console.log(`${''.padEnd(52)} cp + fsync: ${fmt(copy)}   ours/cp ${(mbps(ours) / mbps(copy)).toFixed(2)}×`);
}
console.log(`load after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
