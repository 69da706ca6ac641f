/**
 * A short run of the fuzz harness (test/fuzz/, `npm run fuzz -- --seconds N` runs it longer): mutated
 * pickles, GGUF headers, safetensors headers and SentencePiece models must parse or fail with a typed error
 * (FormatError / ConfigError) — no TypeError, RangeError, EISDIR, crash, hang or heap blow-up.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CLEAN, formatReports, fuzzTarget } from './fuzz/harness.js';
import { TARGETS } from './fuzz/targets.js';

for (const target of TARGETS) {
  test(`fuzz ${target}: 1500 mutated inputs end in a parse or a typed error`, async () => {
    const r = await fuzzTarget(target, { seed: 20261203, inputs: 1500, hangMs: 10000 });
    assert.equal(r.inputs, 1500);
    const bad = Object.keys(r.counts).filter((k) => !CLEAN.has(k));
    assert.deepEqual(bad, [], formatReports([r]));
    // The mutations must reach past the first check: some inputs parse, most are refused.
    assert.ok((r.counts.ok ?? 0) > 0 && (r.counts.FormatError ?? 0) > 0, formatReports([r]));
  });
}

test('the harness counts what it must: untyped errors, a hang and a heap blow-up, then carries on', async () => {
  const r = await fuzzTarget('canary', { seed: 1, inputs: 16, hangMs: 1500, heapMb: 64 });
  // 16 inputs: #7 (would be a ConfigError) hangs, #13 (a FormatError) crashes; the other 14 by index mod 4.
  assert.deepEqual(r.counts, { ok: 4, FormatError: 3, TypeError: 4, ConfigError: 3, hang: 1, crash: 1 }, formatReports([r]));
  assert.deepEqual(r.defects.map((d) => [d.index, d.kind]), [[2, 'TypeError'], [6, 'TypeError'], [7, 'hang'], [10, 'TypeError'], [13, 'crash'], [14, 'TypeError']]);
});
