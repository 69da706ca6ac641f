/**
 * Every instruction-set level this CPU runs, not just the best: the native kernel and batch-invariance
 * tests again in child processes with GROK_NATIVE_ISA set to each lower level (the best level runs them
 * in the main test run). On an AVX-512 machine with BF16 that is scalar, AVX2 and AVX-512 (without
 * vdpbf16ps); with AVX-512 alone, scalar and AVX2; on an AVX2-only one, scalar.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadNativeAddon, nativeInfo } from '../src/kernels/native.js';

const loaded = loadNativeAddon();
const missing = 'error' in loaded ? loaded.error : undefined;
if (missing && process.env.CI === 'true') throw new Error(`CI: the native addon must load: ${missing}`);
const info = missing ? undefined : nativeInfo();
const lower = info ? info.levels!.filter((l) => l !== info.isa) : [];
const files = ['native-kernels.test.js', 'native-invariance.test.js', 'kernels-many.test.js'].map((f) => fileURLToPath(new URL(f, import.meta.url)));

test(`native kernels at the lower levels this CPU runs (${lower.join(', ') || 'none'}): same tests, each level in its own process`, { skip: missing ? `native addon unavailable: ${missing}` : false }, () => {
  // Without NODE_TEST_CONTEXT the child reports in plain TAP instead of to this runner.
  const { NODE_TEST_CONTEXT: _ctx, ...env } = process.env;
  for (const level of lower) {
    const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', ...files], { env: { ...env, GROK_NATIVE_ISA: level }, encoding: 'utf8', maxBuffer: 1 << 26 });
    const failed = r.stdout.split('\n').filter((l) => /^not ok|^\s+error:/.test(l));
    assert.equal(r.status, 0, `level ${level}: ${failed.join('\n') || r.stderr.slice(-2000)}`);
    assert.match(r.stdout, new RegExp(`native ${level}`), `level ${level}: the child did not run at that level`);
  }
});
