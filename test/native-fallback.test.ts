/**
 * Backend selection around the native addon: createKernels() prefers it where it loads; an absent or
 * broken addon (GROK_NATIVE_ADDON pointed elsewhere, as after a failed build) falls back to the
 * WebAssembly kernels with one line saying why; `kernels: 'native'` then throws; GROK_BACKEND forces a
 * backend. The build itself never fails an install: without a compiler it prints one line and exits 0
 * (1 with --strict, for CI). Each case runs in a child process (the addon is loaded once per process).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNativeAddon } from '../src/kernels/native.js';

const index = new URL('../src/kernels/index.js', import.meta.url).href;
const buildScript = fileURLToPath(new URL('../../scripts/build-native.mjs', import.meta.url));
const native = loadNativeAddon();
if ('error' in native && process.env.CI === 'true') throw new Error(`CI: the native addon must load: ${native.error}`);

/** Run `code` (an ES module body with createKernels, nativeInfo in scope) with extra environment. */
function child(code: string, env: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
  const src = `import { createKernels, closeKernels, nativeInfo } from ${JSON.stringify(index)};\n${code}\n`;
  const { GROK_BACKEND: _b, GROK_NATIVE_ADDON: _a, ...base } = process.env;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', src], { env: { ...base, ...env }, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-fallback-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const notAnAddon = path.join(tmp, 'broken.node');
fs.writeFileSync(notAnAddon, 'not a shared object');

test('createKernels() uses the native kernels where the addon loads', { skip: 'error' in native ? `native addon unavailable: ${native.error}` : false }, () => {
  const r = child("const k = createKernels({ threads: 1 }); console.log(k.name); closeKernels(k); const i = nativeInfo(1); console.log(i.backend, i.available, i.isa, i.features.length > 0);", {});
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^native-\w+-exact-1t$/m);
  assert.match(r.stdout, /^native true \w+ true$/m);
  assert.equal(r.stderr, '', 'no notice when native loads');
});

for (const [what, addon] of [['absent', path.join(tmp, 'missing.node')], ['broken', notAnAddon]] as const) {
  test(`an ${what} addon: createKernels() falls back to WebAssembly with one line saying why; 'native' throws; nativeInfo says so`, () => {
    const r = child(`
      const a = createKernels({ threads: 1 }), b = createKernels({ threads: 1, mode: 'fast' });
      console.log(a.name, b.name);
      closeKernels(a); closeKernels(b);
      try { createKernels({ kernels: 'native' }); console.log('native: no error'); } catch (e) { console.log('native:', e.message); }
      const i = nativeInfo(1);
      console.log('info', i.available, i.error.includes(${JSON.stringify(path.basename(addon))}), i.node === process.version, i.backend);`, { GROK_NATIVE_ADDON: addon });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^wasm-simd-exact-1t wasm-simd-fast-1t$/m);
    const notices = r.stderr.trim().split('\n').filter(Boolean);
    assert.equal(notices.length, 1, `one notice, got: ${r.stderr}`);
    assert.match(notices[0]!, new RegExp(`^grok: native kernels unavailable \\(.*${path.basename(addon).replace('.', '\\.')}.*\\); using the WebAssembly kernels$`));
    assert.match(r.stdout, /native: createKernels: the native kernels are unavailable/);
    assert.match(r.stdout, /^info false true true wasm$/m);
  });
}

test('GROK_BACKEND forces a backend for createKernels(); a bad value is an error', () => {
  const run = (b: string) => child("try { const k = createKernels({ threads: 1 }); console.log(k.name); closeKernels(k); } catch (e) { console.log('error', e.message); }", { GROK_BACKEND: b });
  assert.match(run('wasm').stdout, /^wasm-simd-exact-1t$/m);
  assert.match(run('reference').stdout, /^reference$/m);
  assert.match(run('gpu').stdout, /^error GROK_BACKEND must be native, wasm or reference/m);
  if (!('error' in native)) assert.match(run('native').stdout, /^native-/m);
});

test('the addon build without a C compiler: one line, exit 0 (install goes on); --strict exits 1', () => {
  const out = path.join(tmp, 'build');
  const env = { ...process.env, CC: path.join(tmp, 'no-such-cc') };
  const r = spawnSync(process.execPath, [buildScript, '--out', out], { env, encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.match(r.stderr.trim(), /^grok: native kernels not built \(no C compiler \(.*no-such-cc\)\); the WebAssembly kernels will be used$/);
  assert.ok(!fs.existsSync(path.join(out, 'grok-native.node')));
  const strict = spawnSync(process.execPath, [buildScript, '--strict', '--out', out], { env, encoding: 'utf8' });
  assert.equal(strict.status, 1);
});

test('GROK_NATIVE_ISA is a cap: a level this CPU lacks (another architecture\'s, or above its best) means its best, with one line saying so; an unknown name is an error', { skip: 'error' in native ? `native addon unavailable: ${native.error}` : false }, () => {
  if ('error' in native) return;
  const { best, levels } = native.addon.info();
  const order = process.arch === 'arm64' ? ['scalar', 'neon', 'neon_dot'] : ['scalar', 'avx2', 'avx512', 'avx512_bf16'];
  const above = order.slice(order.indexOf(best) + 1);
  const foreign = process.arch === 'arm64' ? 'avx512' : 'neon';
  const code = "const k = createKernels({ threads: 2, mode: 'fast' }); console.log(k.name); closeKernels(k); const i = nativeInfo(2); console.log(i.isa, '|', i.error);";
  for (const requested of [foreign, ...above]) {
    for (const backend of ['', 'native']) {
      const r = child(code, { GROK_NATIVE_ISA: requested, ...(backend ? { GROK_BACKEND: backend } : {}) });
      assert.equal(r.status, 0, `${requested}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^native-${best}-fast-2t$`, 'm'), requested);
      const notes = r.stderr.trim().split('\n').filter((l) => l.length > 0);
      assert.equal(notes.length, 1, `${requested}: one line of notice, got ${JSON.stringify(r.stderr)}`);
      assert.match(notes[0]!, new RegExp(`^grok: GROK_NATIVE_ISA / isa '${requested}' (is above what this CPU runs|is not a level of ${process.arch} CPUs) \\(${levels.join(', ')}\\); using ${best}$`));
      assert.match(r.stdout, new RegExp(`^${best} \\| GROK_NATIVE_ISA`, 'm'), 'nativeInfo reports the level used and why');
    }
  }
  const low = child(code, { GROK_NATIVE_ISA: 'scalar' });
  assert.match(low.stdout, /^native-scalar-fast-2t$/m, 'a level the CPU runs is used as asked');
  assert.equal(low.stderr.trim(), '');
  const bad = child("try { createKernels({ threads: 1 }); } catch (e) { console.log('error', e.message); }", { GROK_NATIVE_ISA: 'avx9000' });
  assert.match(bad.stdout, /^error GROK_NATIVE_ISA \/ isa 'avx9000' is not a level this CPU runs/m);
});
