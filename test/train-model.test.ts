// The training model (src/train): forward against the fixtures' golden logits, every backward pass
// against central finite differences in float64, AdamW / schedule against hand-derived values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { readSafetensorsFile } from '../src/formats/safetensors.js';
import { configFromJson, GROK1, type GrokConfig } from '../src/model/config.js';
import { ParamSet, GrokTrainer } from '../src/train/model.js';
import { AdamW, cosineLr, clipGradNorm } from '../src/train/optim.js';
import { gelu, geluGrad } from '../src/train/ops.js';
import { Rng } from '../src/base/rng.js';
import { fixtureDir } from './fixtures.js';

/** Hugging Face port names (the Hugging Face ports' tensor names, families A and B) → the GGUF names the trainer uses. */
const FAMILY = {
  A: {
    embd: 'transformer.in_out_embed.weight', outNorm: 'transformer.rms_norm.weight', layer: (l: number) => `transformer.decoder_layer.${l}.`,
    q: 'multi_head_attention.query.weight', k: 'multi_head_attention.key.weight', v: 'multi_head_attention.value.weight',
    o: 'multi_head_attention.linear.weight', n0: 'rms_norm.weight', n1: 'rms_norm_1.weight', n2: 'rms_norm_2.weight',
    n3: 'rms_norm_3.weight', router: 'router.weight', expert: (e: number) => `moe.${e}.`,
  },
  B: {
    embd: 'model.embed_tokens.weight', outNorm: 'model.norm.scale', layer: (l: number) => `model.layers.${l}.`,
    q: 'attn.q_proj.weight', k: 'attn.k_proj.weight', v: 'attn.v_proj.weight', o: 'attn.o_proj.weight',
    n0: 'pre_attn_norm.scale', n1: 'post_attn_norm.scale', n2: 'pre_moe_norm.scale', n3: 'post_moe_norm.scale',
    router: 'moe_block.gate.weight', expert: (e: number) => `moe_block.experts.${e}.`,
  },
} as const;

function loadHf(params: ParamSet, file: string, family: keyof typeof FAMILY): void {
  const f = FAMILY[family];
  const st = readSafetensorsFile(file);
  const fd = fs.openSync(file, 'r');
  const read = (name: string, expectLen: number): Float32Array => {
    const t = st.tensors.get(name);
    assert.ok(t, `tensor ${name} missing in ${file}`);
    assert.equal(t.type, 'f32');
    const buf = Buffer.alloc(t.length);
    fs.readSync(fd, buf, 0, t.length, t.offset);
    const a = new Float32Array(buf.buffer, buf.byteOffset, t.length / 4);
    assert.equal(a.length, expectLen, name);
    return a;
  };
  const c = params.config;
  const set = (dst: string, src: string) => { const d = params.get(dst); d.set(read(src, d.length)); };
  set('token_embd.weight', f.embd);
  set('output_norm.weight', f.outNorm);
  for (let l = 0; l < c.nLayers; l++) {
    const s = f.layer(l), d = `blk.${l}.`;
    set(d + 'attn_q.weight', s + f.q);
    set(d + 'attn_k.weight', s + f.k);
    set(d + 'attn_v.weight', s + f.v);
    set(d + 'attn_output.weight', s + f.o);
    set(d + 'attn_norm.weight', s + f.n0);
    set(d + 'attn_output_norm.weight', s + f.n1);
    set(d + 'ffn_norm.weight', s + f.n2);
    set(d + 'layer_output_norm.weight', s + f.n3);
    set(d + 'ffn_gate_inp.weight', s + f.router);
    const per = c.ffnSize * c.dModel;
    for (let e = 0; e < c.nExperts; e++) {
      params.get(d + 'ffn_gate_exps.weight').set(read(`${s}${f.expert(e)}linear.weight`, per), e * per);
      params.get(d + 'ffn_up_exps.weight').set(read(`${s}${f.expert(e)}linear_v.weight`, per), e * per);
      params.get(d + 'ffn_down_exps.weight').set(read(`${s}${f.expert(e)}linear_1.weight`, per), e * per);
    }
  }
  fs.closeSync(fd);
}

for (const [fixture, family] of [['tiny-a', 'A'], ['tiny-b', 'B']] as const) {
  test(`forward reproduces ${fixture} golden logits, top-5 and expert choices (float32)`, () => {
    const dir = fixtureDir(fixture);
    const golden = JSON.parse(fs.readFileSync(path.join(dir, 'golden.json'), 'utf8'));
    const config = configFromJson(golden, 'golden.json');
    const params = new ParamSet(config, 'f32');
    loadHf(params, path.join(dir, 'model.safetensors'), family);
    const tokens: number[] = golden.tokens;
    const T = tokens.length;
    const { logits, selected } = new GrokTrainer(params, T).forwardWithRouting(tokens, 1, T);
    const raw = fs.readFileSync(path.join(dir, 'logits.f32'));
    const want = new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
    assert.equal(logits.length, want.length);
    let maxErr = 0;
    for (let i = 0; i < want.length; i++) maxErr = Math.max(maxErr, Math.abs(logits[i] - want[i]));
    assert.ok(maxErr < 2e-4, `max |logit − golden| = ${maxErr}`);
    const V = config.vocabSize, A = config.nExpertsUsed;
    for (let t = 0; t < T; t++) {
      const row = Array.from(logits.subarray(t * V, (t + 1) * V));
      const top5 = row.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]).slice(0, 5).map((x) => x[1]);
      assert.deepEqual(top5, golden.top5[t], `top-5 at position ${t}`);
    }
    for (let l = 0; l < config.nLayers; l++) {
      for (let t = 0; t < T; t++) {
        const got = Array.from(selected[l].subarray(t * A, t * A + A));
        assert.deepEqual(got, golden.layers[l].experts[t], `experts of layer ${l} at position ${t}`);
      }
    }
  });
}

function tinyConfig(over: Partial<GrokConfig> = {}): GrokConfig {
  // headDim × heads (12) ≠ dModel (8), as in fixture tiny-b, so no code may assume D = H·K.
  return {
    ...GROK1, vocabSize: 13, dModel: 8, nLayers: 2, nHeads: 4, nKVHeads: 2, headDim: 4, ffnSize: 6,
    nExperts: 4, nExpertsUsed: 2, contextLength: 8, ...over,
  };
}

/** Objective = CE + aux; returns analytic grads and compares a sample of entries of every tensor with central differences. */
function gradCheck(config: GrokConfig, tokens: number[], targets: number[], B: number, T: number, auxCoef: number, seed: number): void {
  const rng = new Rng(seed);
  const params = new ParamSet(config, 'f64');
  params.init(rng);
  // Norm scales ≠ 1 and a stronger router so gates and norms are exercised away from their init values.
  for (const p of params.list) {
    if (p.shape.length === 1) for (let i = 0; i < p.data.length; i++) p.data[i] = 0.5 + rng.next();
    if (p.name.endsWith('ffn_gate_inp.weight')) for (let i = 0; i < p.data.length; i++) p.data[i] = rng.normal();
  }
  const grads = new ParamSet(config, 'f64');
  const trainer = new GrokTrainer(params, T);
  const objective = () => {
    const g = new ParamSet(config, 'f64');
    const r = trainer.step(tokens, targets, B, T, g, { auxCoef });
    return r.loss + r.auxLoss;
  };
  const base = trainer.step(tokens, targets, B, T, grads, { auxCoef });
  assert.ok(Number.isFinite(base.loss));
  const h = 1e-6;
  for (const p of params.list) {
    const g = grads.get(p.name);
    const picks = new Set<number>();
    while (picks.size < Math.min(8, p.data.length)) picks.add(rng.int(p.data.length));
    for (const i of picks) {
      const x = p.data[i];
      p.data[i] = x + h; const fp = objective();
      p.data[i] = x - h; const fm = objective();
      p.data[i] = x;
      const num = (fp - fm) / (2 * h);
      const err = Math.abs(num - g[i]);
      assert.ok(err <= 1e-6 + 1e-5 * Math.abs(num), `${p.name}[${i}]: analytic ${g[i]}, numeric ${num}`);
    }
  }
}

test('backward matches finite differences for every parameter type (float64, soft-cap active, pad key, aux loss)', () => {
  // attnSoftcap 0.5 with a large multiplier puts most scores in tanh's curved part; token 0 (pad) masks a key.
  const config = tinyConfig({ attnSoftcap: 0.5, attnOutputMultiplier: 2 });
  const B = 2, T = 5;
  const tokens = [5, 0, 7, 3, 12, 1, 4, 4, 9, 11];
  const targets = [0, 7, 3, 12, 2, 4, 4, 9, 11, 6];
  gradCheck(config, tokens, targets, B, T, 0.05, 3);
});

test('backward matches finite differences with Grok-1 multipliers and cap (30), one KV head', () => {
  const config = tinyConfig({ nKVHeads: 1, nExperts: 3, nExpertsUsed: 2 });
  gradCheck(config, [4, 8, 2, 9, 1, 10], [8, 2, 9, 1, 10, 3], 1, 6, 0, 5);
});

test('gelu derivative matches finite differences; gelu(1) is the tanh-approximation value', () => {
  // 0.5·(1 + tanh(√(2/π)·1.044715)) = 0.8411919906082768 (hand-evaluated).
  assert.ok(Math.abs(gelu(1) - 0.8411919906082768) < 1e-12);
  for (const x of [-4, -1.3, -0.2, 0, 0.7, 2.5]) {
    const num = (gelu(x + 1e-6) - gelu(x - 1e-6)) / 2e-6;
    assert.ok(Math.abs(num - geluGrad(x)) < 1e-8, `x=${x}`);
  }
});

test('AdamW first step moves each weight by lr·(sign(g) + wd·w); clipping and cosine schedule values', () => {
  const config = tinyConfig();
  const params = new ParamSet(config, 'f32');
  params.get('token_embd.weight').fill(2);
  params.get('output_norm.weight').fill(2);
  const grads = new ParamSet(config, 'f32');
  grads.get('token_embd.weight').fill(-0.5);
  grads.get('output_norm.weight').fill(0.25);
  const opt = new AdamW(params, { beta1: 0.9, beta2: 0.95, eps: 0, weightDecay: 0.1 });
  opt.step(grads, 0.01);
  // m̂ = g, v̂ = g², update = sign(g); decay only on matrices: 2 − 0.01·(−1 + 0.2) = 2.008; norm: 2 − 0.01 = 1.99.
  assert.ok(Math.abs(params.get('token_embd.weight')[0] - 2.008) < 1e-6);
  assert.ok(Math.abs(params.get('output_norm.weight')[0] - 1.99) < 1e-6);

  const g2 = new ParamSet(config, 'f32');
  g2.get('output_norm.weight').set([3, 4]); // norm 5
  assert.equal(clipGradNorm(g2, 1), 5);
  assert.ok(Math.abs(g2.get('output_norm.weight')[0] - 0.6) < 1e-7 && Math.abs(g2.get('output_norm.weight')[1] - 0.8) < 1e-7);

  const o = { lr: 1, minLr: 0.1, warmup: 10, total: 110 };
  assert.equal(cosineLr(0, o), 0.1);
  assert.equal(cosineLr(9, o), 1);
  assert.ok(Math.abs(cosineLr(60, o) - 0.55) < 1e-12); // halfway: min + (max − min)/2
  assert.equal(cosineLr(110, o), 0.1);
});
