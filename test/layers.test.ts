/**
 * The layer order (README "Layout"): every import in src/ goes to its own layer or to one the table below
 * allows. A back-edge — kernels importing model, formats importing tokenizer, … — fails here with the
 * file, the import and the rule it breaks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

/** Each layer and the layers it may import (its own is always allowed). Lowest first. */
export const LAYERS: Record<string, readonly string[]> = {
  base: [],
  quant: ['base'],
  formats: ['base', 'quant'],
  tokenizer: ['base'],
  hub: ['base'],
  kernels: ['base', 'quant'],
  model: ['base', 'quant', 'formats', 'tokenizer', 'kernels'],
  engine: ['base', 'model'],
  convert: ['base', 'quant', 'formats', 'tokenizer', 'kernels', 'model'],
  train: ['base', 'quant', 'formats', 'tokenizer', 'kernels', 'model', 'convert'],
  api: ['base', 'quant', 'formats', 'tokenizer', 'kernels', 'model', 'engine', 'hub'],
  cli: ['base', 'quant', 'formats', 'tokenizer', 'kernels', 'model', 'engine', 'convert', 'train', 'api', 'hub'],
  // src/index.ts: the library's entry point re-exports the API.
  '(root)': ['base', 'tokenizer', 'model', 'kernels', 'engine', 'api', 'hub'],
};

const SRC = path.resolve('src');

function layerOf(file: string): string {
  const rel = path.relative(SRC, file).split(path.sep);
  return rel.length === 1 ? '(root)' : rel[0]!;
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return /\.ts$/.test(e.name) && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** Relative module specifiers of every static import / export-from / dynamic import in a file. */
export function importsOf(text: string): string[] {
  const out: string[] = [];
  const re = /(?:^|[\s;])(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s*['"]([^'"]+)['"]/gm;
  for (const m of text.matchAll(re)) {
    const spec = m[1] ?? m[2] ?? m[3]!;
    if (spec.startsWith('.')) out.push(spec);
  }
  return out;
}

/** Every import against the table, as "file: import 'spec' (layer a → layer b)". */
export function layerViolations(files: readonly { file: string; text: string }[]): string[] {
  const bad: string[] = [];
  for (const { file: f, text } of files) {
    const from = layerOf(f);
    const allowed = LAYERS[from];
    if (!allowed) { bad.push(`${path.relative(SRC, f)}: layer '${from}' is not in the table`); continue; }
    for (const spec of importsOf(text)) {
      const target = path.resolve(path.dirname(f), spec);
      if (!target.startsWith(SRC + path.sep)) { bad.push(`${path.relative(SRC, f)}: import '${spec}' leaves src/`); continue; }
      const to = layerOf(target);
      if (to !== from && !allowed.includes(to)) bad.push(`${path.relative(SRC, f)}: import '${spec}' (${from} → ${to})`);
    }
  }
  return bad;
}

test('every import in src/ follows the layer order', () => {
  const files = sourceFiles(SRC);
  assert.ok(files.length > 50, `found only ${files.length} source files under ${SRC}`);
  assert.deepEqual(layerViolations(files.map((file) => ({ file, text: fs.readFileSync(file, 'utf8') }))), []);
});

test('the check sees a back-edge: a kernels file importing model and api fails', () => {
  const file = path.join(SRC, 'kernels', 'probe.ts'); // never written: checked as text
  const text = "import type { GrokModel } from '../model/grok.js';\nconst api = import('../api/index.js');\nimport { rowBytes } from '../quant/index.js';\n";
  const v = layerViolations([{ file, text }]);
  assert.equal(v.length, 2, v.join('\n'));
  assert.match(v[0]!, /kernels → model/);
  assert.match(v[1]!, /kernels → api/);
});
