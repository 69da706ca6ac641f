/**
 * The kernel ABI (src/kernels/abi.ts) is the one declaration both sides compile: block-type codes are
 * ggml's type ids, each argument slot the TypeScript driver writes is read by the AssemblyScript kernels
 * under the same name and type (and nothing else is), the slot groups are C structs of 32-bit fields,
 * and the argument block lies clear of the module's static data. The source checks read files as text
 * (run from the repository root, as `npm test` does).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as abi from '../src/kernels/abi.js';
import { kernelModule } from '../src/kernels/wasm.js';
import { blockFormat, type BlockType } from '../src/quant/index.js';
import { probeTool, toolTest } from './cross-check.js';

// The build's own script (not compiled into dist/): imported from the source tree.
const { abiDeclarations, abiHeader, abiSlots, SLOT_GROUPS } = (await import(new URL('../../scripts/abi-header.mjs', import.meta.url).href)) as typeof import('../scripts/abi-header.mjs');

// The parser and the C header generator are the build's own (scripts/abi-header.mjs).
const DECLS = abiDeclarations(fs.readFileSync('src/kernels/abi.ts', 'utf8'));
const slots = (group: string) => abiSlots(DECLS, group);

test('abi.ts is plain declarations, and the module exports exactly them', () => {
  const values = Object.fromEntries(DECLS.map((d) => [d.name, d.value]));
  assert.deepEqual({ ...abi }, values);
  assert.equal(new Set(DECLS.map((d) => d.name)).size, DECLS.length);
});

test('block-type codes are ggml type ids: blockFormat(t).ggmlId, for every type src/quant knows', () => {
  // A Record over BlockType: a type added to src/quant without a code here fails to compile.
  const codes: Record<BlockType, number> = {
    f32: abi.TYPE_F32, f16: abi.TYPE_F16, bf16: abi.TYPE_BF16, q8_0: abi.TYPE_Q8_0, q4_0: abi.TYPE_Q4_0, q4_1: abi.TYPE_Q4_1,
    q5_0: abi.TYPE_Q5_0, q5_1: abi.TYPE_Q5_1, q2_k: abi.TYPE_Q2_K, q3_k: abi.TYPE_Q3_K, q4_k: abi.TYPE_Q4_K, q5_k: abi.TYPE_Q5_K,
    q6_k: abi.TYPE_Q6_K, iq4_nl: abi.TYPE_IQ4_NL, iq4_xs: abi.TYPE_IQ4_XS, iq1_s: abi.TYPE_IQ1_S, iq1_m: abi.TYPE_IQ1_M,
    iq2_xxs: abi.TYPE_IQ2_XXS, iq2_xs: abi.TYPE_IQ2_XS, iq2_s: abi.TYPE_IQ2_S, iq3_xxs: abi.TYPE_IQ3_XXS, iq3_s: abi.TYPE_IQ3_S,
  };
  for (const [t, code] of Object.entries(codes) as [BlockType, number][]) assert.equal(code, blockFormat(t).ggmlId, t);
  // …and abi.ts declares no other TYPE_ code.
  const declared = DECLS.filter((d) => d.name.startsWith('TYPE_')).map((d) => d.name.slice(5).toLowerCase()).sort();
  assert.deepEqual(declared, Object.keys(codes).sort());
  // The literal ids (ggml.h enum ggml_type), so a renumbering on either side cannot pass silently.
  assert.deepEqual(codes, { f32: 0, f16: 1, q4_0: 2, q4_1: 3, q5_0: 6, q5_1: 7, q8_0: 8, q2_k: 10, q3_k: 11, q4_k: 12, q5_k: 13, q6_k: 14,
    iq2_xxs: 16, iq2_xs: 17, iq3_xxs: 18, iq1_s: 19, iq4_nl: 20, iq3_s: 21, iq2_s: 22, iq4_xs: 23, iq1_m: 29, bf16: 30 });
  assert.notEqual(abi.MODE_EXACT, abi.MODE_FAST);
});

test('argument slots: consecutive 32-bit offsets from 0, block size = 4 × slots', () => {
  for (const g of SLOT_GROUPS) {
    const s = slots(g);
    assert.ok(s.length > 0, g);
    assert.deepEqual(s.map((x) => x.offset), s.map((_, i) => 4 * i), `${g}: offsets in declaration order`);
    assert.equal((abi as Record<string, number>)[`${g}_ARGS_BYTES`], 4 * s.length, `${g}_ARGS_BYTES`);
  }
});

test('every slot wasm.ts writes is read by assembly/ under the same name and type, and nothing else is', () => {
  const ts = fs.readFileSync('src/kernels/wasm.ts', 'utf8');
  const written = new Map<string, 'i32' | 'f32'>();
  for (const m of ts.matchAll(/\bsetArg(F32)?\((\w+),/g)) written.set(m[2]!, m[1] ? 'f32' : 'i32');
  const read = new Map<string, string>();
  for (const f of fs.readdirSync('assembly').filter((n) => n.endsWith('.ts'))) {
    const text = fs.readFileSync(path.join('assembly', f), 'utf8');
    for (const m of text.matchAll(/\bload<(\w+)>\(args(?:, (\w+))?\)/g)) {
      assert.ok(m[2], `assembly/${f}: an argument read without a slot name from abi.ts: ${m[0]}`);
      read.set(m[2], m[1]!);
    }
  }
  const declared = SLOT_GROUPS.flatMap(slots);
  const names = new Set(declared.map((s) => s.name));
  for (const n of written.keys()) assert.ok(names.has(n), `wasm.ts writes '${n}', which abi.ts does not declare as a slot`);
  for (const n of read.keys()) assert.ok(names.has(n), `assembly/ reads '${n}', which abi.ts does not declare as a slot`);
  for (const s of declared) {
    assert.equal(written.get(s.name), s.type === 'f32' ? 'f32' : 'i32', `${s.name} (${s.type}): written by wasm.ts with setArg${s.type === 'f32' ? 'F32' : ''}`);
    assert.equal(read.get(s.name), s.type === 'ptr' ? 'u32' : s.type, `${s.name} (${s.type}): read by assembly/ as load<${s.type === 'ptr' ? 'u32' : s.type}>`);
  }
});

test('the argument block lies above the module\'s static data and below the thread scratch (64 KiB)', () => {
  const module = kernelModule();
  assert.ok(module, 'the kernel module builds and validates on this runtime');
  const memory = new WebAssembly.Memory({ initial: 2, maximum: 65536, shared: true });
  new WebAssembly.Instance(module, { env: { memory } }); // writes the data segments
  const bytes = new Uint8Array(memory.buffer, 0, 65536);
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  assert.ok(end > 0 && end <= abi.WASM_ARG_BLOCK, `static data ends at ${end}, the argument block starts at ${abi.WASM_ARG_BLOCK}`);
  assert.ok(abi.WASM_ARG_BLOCK + Math.max(abi.MM_ARGS_BYTES, abi.XAI8_ARGS_BYTES, abi.ATTN_ARGS_BYTES) <= 65536);
});

const cc = await probeTool('a C compiler (cc)', () => {
  const r = spawnSync('cc', ['--version']);
  if (r.error || r.status !== 0) throw new Error(r.error?.message ?? 'cc --version failed');
  return 'cc';
});

toolTest(cc, 'the C header generated from abi.ts (the one native/ compiles with) compiles, its struct offsets equal the slot offsets', () => {
  const checks = SLOT_GROUPS.flatMap((g) => [
    ...slots(g).map((s) => `_Static_assert(offsetof(struct grok_${g.toLowerCase()}_args, ${s.field}) == GROK_${s.name}, "${s.name}");`),
    `_Static_assert(sizeof(struct grok_${g.toLowerCase()}_args) == GROK_${g}_ARGS_BYTES, "${g}_ARGS_BYTES");`,
  ]);
  const src = `${abiHeader(DECLS)}#include <stddef.h>\n${checks.join('\n')}\n`;
  const r = spawnSync('cc', ['-std=c11', '-Wall', '-Werror', '-fsyntax-only', '-x', 'c', '-'], { input: src, encoding: 'utf8' });
  assert.equal(r.status, 0, `cc: ${r.stderr}\n${src}`);
});
