// Reference data for test/convert-recipes.test.ts: llama.cpp's mixtures (llama_model_quantize with pure = false,
// test/data/quant-ref/model-quantize.c --mixed) applied to small grok models that `grok synth` writes
// deterministically, recorded as {model/recipe: {tensor: [ggml type id, first 16 hex digits of its sha256]}, …} plus each file's
// general.file_type; also llama-quantize's pure mode for PURE_CASES, as model/<type> or model/<type>+imatrix.
// Run from the repository root after `npx tsc -p .` and building /tmp/model-quantize
// (see model-quantize.c):
//
//   node test/data/quant-ref/gen-recipes.mjs /tmp/model-quantize > test/data/quant-ref/llama-recipes.json
//   node test/data/quant-ref/gen-recipes.mjs /tmp/model-quantize --iq > test/data/quant-ref/llama-recipes-iq.json
// (--iq: the i-quant mixtures of IQ_RECIPE_CASES instead, with 2 threads.)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IQ_RECIPE_CASES, PURE_CASES, RECIPE_MODELS, RECIPE_CASES, writeImatrixDat } from '../../../dist/test/recipe-models.js';
import { LLAMA_FTYPE } from '../../../dist/src/model/gguf-grok.js';
import { synthModel } from '../../../dist/src/convert/synth.js';
import { readGgufFile } from '../../../dist/src/formats/gguf.js';
import { RECIPES } from '../../../dist/src/convert/recipes.js';
import crypto from 'node:crypto';

const bin = process.argv[2];
const iq = process.argv[3] === '--iq';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-recipes-'));
const out = {};
try {
  for (const [model, m] of Object.entries(RECIPE_MODELS)) {
    const src = path.join(tmp, `${model}.gguf`);
    await synthModel({ config: m.config, type: 'f32', out: src, seed: m.seed });
    const dat = path.join(tmp, `${model}.imatrix.dat`);
    writeImatrixDat(dat, m.config, m.seed);
    const cases = iq ? IQ_RECIPE_CASES.map((c) => ({ name: c.recipe, ftype: RECIPES[c.recipe].ftype, mixed: true, imatrix: c.imatrix })) : [
      ...RECIPE_CASES.map((c) => ({ name: c.recipe, ftype: RECIPES[c.recipe].ftype, mixed: true, imatrix: c.imatrix })),
      ...PURE_CASES.filter((c) => !c.models || c.models.includes(model))
        .map((c) => ({ name: c.type, ftype: LLAMA_FTYPE[c.type], mixed: false, imatrix: c.imatrix })),
    ];
    for (const c of cases) {
      const dst = path.join(tmp, `${model}-${c.name}.gguf`);
      const args = [src, dst, String(c.ftype), ...(c.mixed ? ['--mixed'] : []), ...(c.imatrix ? ['--imatrix', dat] : []), ...(iq ? ['--nthread', '2'] : [])];
      const r = spawnSync(bin, args, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')}\n${r.stderr}`);
      const f = readGgufFile(dst);
      const fd = fs.openSync(dst, 'r');
      const tensors = {};
      for (const t of f.tensors) {
        const b = Buffer.alloc(t.ref.length);
        fs.readSync(fd, b, 0, b.length, t.ref.offset);
        tensors[t.name] = [t.ggmlType, crypto.createHash('sha256').update(b).digest('hex').slice(0, 16)]; // 64 bits: enough to tell bytes apart
      }
      fs.closeSync(fd);
      out[`${model}/${c.name}${c.imatrix ? '+imatrix' : ''}`] = { file_type: Number(f.metadata.get('general.file_type')), tensors };
      fs.rmSync(dst);
    }
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify(out)}\n`);
