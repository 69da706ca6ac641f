/** The released-checkpoint reader: file order, pickle parsing, and bad input. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { FormatError } from '../src/base/errors.js';
import { ckptParameterPaths, layerFileOrder, openCkpt } from '../src/formats/ckpt.js';
import { readCheckpointTensor } from '../src/formats/pickle.js';
import { isQuantizedRef } from '../src/formats/tensor-ref.js';
import { loadModel } from '../src/model/loader.js';
import { fixtureDir } from './fixtures.js';

test('file order of 64 layers matches the first file index of every layer (checkpoint.py: JAX flattens the tree in sorted key order)', () => {
  // L:first from the sorted parameter paths, written out by hand.
  const first = '0:2 1:14 2:146 3:278 4:410 5:542 6:674 7:734 8:746 9:758 10:26 11:38 12:50 13:62 14:74 15:86 16:98 17:110 18:122 19:134 20:158 21:170 22:182 23:194 24:206 25:218 26:230 27:242 28:254 29:266 30:290 31:302 32:314 33:326 34:338 35:350 36:362 37:374 38:386 39:398 40:422 41:434 42:446 43:458 44:470 45:482 46:494 47:506 48:518 49:530 50:554 51:566 52:578 53:590 54:602 55:614 56:626 57:638 58:650 59:662 60:686 61:698 62:710 63:722';
  const order = layerFileOrder(64);
  for (const pair of first.split(' ')) {
    const [layer, index] = pair.split(':').map(Number) as [number, number];
    assert.equal(2 + 12 * order.indexOf(layer), index, `layer ${layer}`);
  }
  const paths = ckptParameterPaths(64);
  assert.equal(paths.length, 770);
  assert.equal(paths[6], 'transformer/decoder_layer_0/multi_head_attention/linear/w');
  assert.equal(paths[13], 'transformer/decoder_layer_0/router/w');
  assert.equal(paths[26], 'transformer/decoder_layer_10/moe/linear/w');
  assert.equal(paths[146], 'transformer/decoder_layer_2/moe/linear/w');
  assert.equal(paths[769], 'transformer/decoder_layer_9/router/w');
  // From 11 layers up, 10 sorts between 1 and 2.
  assert.deepEqual(layerFileOrder(12), [0, 1, 10, 11, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test('fixture checkpoints parse into the documented kinds, shapes and dtypes', () => {
  const src = openCkpt(fixtureDir('tiny-b'));
  const q = src.tensors.get('transformer/decoder_layer_2/moe/linear_1/w')!;
  assert.deepEqual(q.shape, [8, 512, 96]);
  assert.equal(q.type, 'i8');
  assert.ok(isQuantizedRef(q));
  assert.deepEqual(q.scales.shape, [8, 8, 96]); // G = 8 for moe/linear_1
  const o = src.tensors.get('transformer/decoder_layer_0/multi_head_attention/linear/w')!;
  assert.ok(isQuantizedRef(o));
  assert.deepEqual(o.scales.shape, [8, 96]);
  assert.equal(o.scales.type, 'bf16');
  const emb = src.tensors.get('language_model/in_out_embed/embeddings')!;
  assert.deepEqual(emb.shape, [1000, 96]);
  assert.equal(emb.type, 'f32');
  assert.equal(emb.length, 1000 * 96 * 4);
  // The weight payload precedes the scales payload, and both lie inside the file (pickled QuantizedWeight8bit: weight, then scales).
  assert.ok(q.offset + q.length <= q.scales.offset);
});

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'grok-ckpt-'));
}

test('truncated tensor files fail with a FormatError naming the file, at every cut point', () => {
  const src = path.join(fixtureDir('tiny-a'), 'ckpt-0', 'tensor00003_000'); // a QuantizedWeight8bit
  const bytes = fs.readFileSync(src);
  const dir = tmpdir();
  const f = path.join(dir, 'cut');
  const cuts = new Set<number>();
  for (let i = 0; i < 400; i++) cuts.add(i);
  for (let i = 400; i < bytes.length; i += 97) cuts.add(i);
  cuts.add(bytes.length - 1);
  for (const n of cuts) {
    fs.writeFileSync(f, bytes.subarray(0, n));
    assert.throws(() => readCheckpointTensor(f), (e: unknown) => e instanceof FormatError && e.message.startsWith(f), `cut at ${n}`);
  }
  fs.rmSync(dir, { recursive: true });
});

test('random byte corruption gives a FormatError or a well-formed result, never a crash or a hang', () => {
  const src = path.join(fixtureDir('tiny-a'), 'ckpt-0', 'tensor00004_000');
  const bytes = fs.readFileSync(src);
  const dir = tmpdir();
  const f = path.join(dir, 'mut');
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let trial = 0; trial < 300; trial++) {
    const m = Buffer.from(bytes);
    const flips = 1 + Math.floor(rand() * 4);
    for (let i = 0; i < flips; i++) m[Math.floor(rand() * Math.min(m.length, 300))] = Math.floor(rand() * 256);
    fs.writeFileSync(f, m);
    try {
      const t = readCheckpointTensor(f);
      const arrays = t.kind === 'qw8' ? [t.weight, t.scales] : [t];
      for (const a of arrays) assert.ok(a.offset >= 0 && a.offset + a.length <= m.length);
    } catch (e) {
      assert.ok(e instanceof FormatError, `trial ${trial}: ${(e as Error).stack}`);
    }
  }
  fs.rmSync(dir, { recursive: true });
});

test('a pickle naming a foreign global is refused at that opcode', () => {
  const dir = tmpdir();
  const f = path.join(dir, 'evil');
  // PROTO 4; "os" "system" STACK_GLOBAL; "echo pwned" TUPLE1 REDUCE STOP
  const s = (x: string) => [0x8c, x.length, ...Buffer.from(x)];
  fs.writeFileSync(f, Buffer.from([0x80, 4, ...s('os'), ...s('system'), 0x93, ...s('echo pwned'), 0x85, 0x52, 0x2e]));
  assert.throws(() => readCheckpointTensor(f), /foreign pickle global 'os\.system'/);
  // The text form (GLOBAL opcode) too.
  fs.writeFileSync(f, Buffer.from([0x80, 2, 0x63, ...Buffer.from('builtins\neval\n'), 0x2e]));
  assert.throws(() => readCheckpointTensor(f), /foreign pickle global 'builtins\.eval'/);
  fs.rmSync(dir, { recursive: true });
});

test('a checkpoint directory with a missing file, a truncated file, or shapes that contradict the config', async () => {
  const orig = path.join(fixtureDir('tiny-a'), 'ckpt-0');
  const copy = () => {
    const d = path.join(tmpdir(), 'ckpt-0');
    fs.mkdirSync(d);
    for (const f of fs.readdirSync(orig)) fs.copyFileSync(path.join(orig, f), path.join(d, f));
    fs.copyFileSync(path.join(fixtureDir('tiny-a'), 'golden.json'), path.join(d, '..', 'golden.json'));
    return d;
  };
  const gap = copy();
  fs.rmSync(path.join(gap, 'tensor00005_000'));
  await assert.rejects(loadModel(gap), /not numbered 0…24 without gaps: tensor00006_000/);

  const cut = copy();
  const victim = path.join(cut, 'tensor00002_000');
  fs.truncateSync(victim, fs.statSync(victim).size - 100);
  await assert.rejects(loadModel(cut), (e: unknown) => e instanceof FormatError && e.message.includes('tensor00002_000') && /truncated/.test(e.message));

  const wrong = copy();
  const cfg = JSON.parse(fs.readFileSync(path.join(fixtureDir('tiny-a'), 'golden.json'), 'utf8'));
  cfg.config.emb_size = 96;
  fs.writeFileSync(path.join(wrong, '..', 'config.json'), JSON.stringify(cfg));
  await assert.rejects(loadModel(wrong, { configPath: path.join(wrong, '..', 'config.json') }), /tensor00009_000: shape mismatch for blk\.0\.attn_norm \(transformer\/decoder_layer_0\/rms_norm\/scale\): got \[64\] f32, expected \[96\]/);

  cfg.config.emb_size = 64;
  cfg.config.num_kv_heads = 3;
  fs.writeFileSync(path.join(wrong, '..', 'config.json'), JSON.stringify(cfg));
  await assert.rejects(loadModel(wrong, { configPath: path.join(wrong, '..', 'config.json') }), /query heads \(4\) must be a multiple of key\/value heads \(3\)/);
});
