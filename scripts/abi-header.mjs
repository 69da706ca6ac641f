/**
 * The kernel ABI (src/kernels/abi.ts) as a C header, so the native kernels take their block-type and
 * mode codes from the same declaration as the TypeScript and the AssemblyScript: `#define GROK_<NAME>
 * <value>` per declaration and a struct of 32-bit fields per argument-slot group. The build
 * (scripts/build-native.mjs) writes it before compiling native/; test/abi.test.ts checks it compiles and
 * that its struct offsets are the slot offsets.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ABI_TS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'kernels', 'abi.ts');
export const SLOT_GROUPS = ['MM', 'XAI8', 'ATTN'];

/** The declarations of abi.ts in order; throws on any line that is not a declaration, a comment or blank. */
export function abiDeclarations(text = fs.readFileSync(ABI_TS, 'utf8')) {
  const out = [];
  const body = text.replace(/^\/\*\*[\s\S]*?\*\/\n/, ''); // the leading doc comment
  for (const [i, line] of body.split('\n').entries()) {
    if (line.trim() === '' || line.startsWith('//')) continue;
    const m = /^export const ([A-Z][A-Z0-9_]*) = (\d+); \/\/ (.+)$/.exec(line);
    if (!m) throw new Error(`abi.ts: line ${i + 1} after the doc comment is not 'export const NAME = <integer>; // comment': ${line}`);
    out.push({ name: m[1], value: Number(m[2]), comment: m[3] });
  }
  return out;
}

/** The argument slots of a group: name, byte offset, type (from the comment) and C field name. */
export function abiSlots(decls, group) {
  return decls.filter((d) => d.name.startsWith(`${group}_`) && d.name !== `${group}_ARGS_BYTES`).map((d) => {
    const type = /^(ptr|u32|i32|f32):/.exec(d.comment)?.[1];
    if (!type) throw new Error(`${d.name}: the comment must start with its type (ptr, u32, i32 or f32): '${d.comment}'`);
    return { name: d.name, offset: d.value, type, field: d.name.slice(group.length + 1).toLowerCase() };
  });
}

export function abiHeader(decls = abiDeclarations()) {
  const ctype = { ptr: 'uint32_t', u32: 'uint32_t', i32: 'int32_t', f32: 'float' };
  const lines = ['/* Generated from src/kernels/abi.ts by scripts/abi-header.mjs: do not edit. */', '#ifndef GROK_ABI_H', '#define GROK_ABI_H', '#include <stdint.h>'];
  for (const d of decls) lines.push(`#define GROK_${d.name} ${d.value} /* ${d.comment.replaceAll('*/', '* /')} */`);
  for (const g of SLOT_GROUPS) {
    lines.push(`struct grok_${g.toLowerCase()}_args {`);
    for (const s of abiSlots(decls, g)) lines.push(`  ${ctype[s.type]} ${s.field};`);
    lines.push('};');
  }
  lines.push('#endif');
  return `${lines.join('\n')}\n`;
}

/** Write grok_abi.h into `dir` (when its content changed); returns the directory for -I. */
export function writeAbiHeader(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'grok_abi.h');
  const text = abiHeader();
  if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== text) fs.writeFileSync(file, text);
  return dir;
}
