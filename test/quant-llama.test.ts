/**
 * Block formats against llama.cpp itself. test/data/quant-ref/ holds llama.cpp's own quantisation and
 * dequantisation of fixed inputs, produced by test/data/quant-ref/gen.c and gen-iq.c linked against the ggml
 * library that node-llama-cpp ships (see their headers for the command). Our quantisers must give the same
 * bytes, and our dequantisers the same floats (bit for bit), including on random block bytes and, for the
 * i-quants, on blocks that walk every point of the type's codebook.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { blockFormat, type BlockType } from '../src/quant/index.js';
import { quantizeRowsWeighted } from '../src/quant/weighted.js';

const DIR = path.resolve('test/data/quant-ref');
const TYPES: BlockType[] = ['q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q2_k', 'q3_k', 'q4_k', 'q5_k', 'q6_k', 'iq4_nl', 'iq4_xs', 'iq3_s', 'iq2_s', 'iq3_xxs'];
/**
 * Types written only with an importance matrix (llama.cpp requires one): gen-iq.c quantised the inputs with
 * all-ones weights, so that is what our weighted quantiser is compared against here.
 */
const IMATRIX_ONLY: BlockType[] = ['iq1_s', 'iq1_m', 'iq2_xxs', 'iq2_xs'];
const GRIDS: BlockType[] = ['iq1_s', 'iq1_m', 'iq2_xxs', 'iq2_xs', 'iq2_s', 'iq3_xxs', 'iq3_s'];

function bytes(name: string): Uint8Array {
  return new Uint8Array(fs.readFileSync(path.join(DIR, name)));
}
function floats(name: string): Float32Array {
  const b = bytes(name);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}

const inputs = floats('inputs.f32');

for (const t of [...TYPES, ...IMATRIX_ONLY]) {
  if (TYPES.includes(t)) test(`${t}: quantiser output is byte-identical to llama.cpp's reference quantiser`, () => {
    const f = blockFormat(t);
    const ref = bytes(`${t}.q`);
    assert.equal(ref.length, (inputs.length / f.blockSize) * f.bytesPerBlock);
    const ours = new Uint8Array(ref.length);
    f.quantize!(inputs, 0, inputs.length, ours, 0);
    for (let i = 0; i < ref.length; i++) {
      if (ours[i] !== ref[i]) {
        const b = Math.floor(i / f.bytesPerBlock);
        assert.fail(`${t}: first difference in block ${b} (values ${b * f.blockSize}…), byte ${i % f.bytesPerBlock}: ours ${ours[i]}, llama.cpp ${ref[i]}`);
      }
    }
  });

  if (IMATRIX_ONLY.includes(t)) test(`${t}: quantiser with all-ones importance weights is byte-identical to llama.cpp's`, () => {
    const f = blockFormat(t);
    const ref = bytes(`${t}.q`);
    assert.equal(ref.length, (inputs.length / f.blockSize) * f.bytesPerBlock);
    const ours = new Uint8Array(ref.length);
    quantizeRowsWeighted(t, inputs, 0, 256, inputs.length / 256, ours, 0, new Float32Array(256).fill(1));
    for (let i = 0; i < ref.length; i++) {
      if (ours[i] !== ref[i]) {
        const b = Math.floor(i / f.bytesPerBlock);
        assert.fail(`${t}: first difference in block ${b} (values ${b * f.blockSize}…), byte ${i % f.bytesPerBlock}: ours ${ours[i]}, llama.cpp ${ref[i]}`);
      }
    }
  });

  for (const kind of ['', '.rand', ...(GRIDS.includes(t) ? ['.grid'] : [])]) {
    const what = { '': 'llama.cpp blocks', '.rand': 'random blocks', '.grid': 'blocks walking the whole codebook' }[kind];
    test(`${t}: dequantised ${what} equal llama.cpp's dequantiser bit for bit`, () => {
      const f = blockFormat(t);
      const q = bytes(`${t}${kind}.q`);
      const ref = floats(`${t}${kind}.deq`);
      const ours = new Float32Array(ref.length);
      f.dequantize(q, 0, ref.length, ours, 0);
      for (let i = 0; i < ref.length; i++) {
        if (!Object.is(ours[i], ref[i])) assert.fail(`${t}${kind}: value ${i}: ours ${ours[i]}, llama.cpp ${ref[i]}`);
      }
    });
  }
}

// With an importance matrix (llama-quantize --imatrix): quantize_<type>(…, quant_weights) from
// test/data/quant-ref/gen-imatrix.c; 8 rows of 256 and 2 rows of 1024 values, weights with zeros (single
// channels and a 16-value run), and rows of 256 whose columns 64 … 127 all weigh 0 (whole blocks).
const WEIGHTED: BlockType[] = ['q2_k', 'q3_k', 'q4_k', 'q5_k', 'q6_k', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'iq4_nl', 'iq4_xs', 'iq3_s', 'iq2_xxs', 'iq2_xs', 'iq2_s', 'iq3_xxs', 'iq1_s', 'iq1_m'];
const cName = (t: BlockType) => t.replace('_k', '_K');
for (const t of WEIGHTED) {
  for (const [nIn, w] of [[256, ''], [1024, ''], [256, 'z']] as const) {
    test(`${t} with importance weights (rows of ${nIn}${w ? ', zero-weight blocks' : ''}): byte-identical to llama.cpp's quantize_${cName(t)}(…, quant_weights)`, () => {
      const f = blockFormat(t);
      const ref = bytes(`${t}.w${nIn}${w}.q`);
      assert.equal(ref.length, (inputs.length / f.blockSize) * f.bytesPerBlock);
      const ours = new Uint8Array(ref.length);
      quantizeRowsWeighted(t, inputs, 0, nIn, inputs.length / nIn, ours, 0, floats(`weights${nIn}${w}.f32`));
      for (let i = 0; i < ref.length; i++) {
        if (ours[i] !== ref[i]) {
          const b = Math.floor(i / f.bytesPerBlock);
          assert.fail(`${t}: first difference in block ${b} (values ${b * f.blockSize}…), byte ${i % f.bytesPerBlock}: ours ${ours[i]}, llama.cpp ${ref[i]}`);
        }
      }
    });
  }
}
