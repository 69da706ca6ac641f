// `grok train` end to end on a tiny recipe: tokenizer, training, checkpoint, metrics, GGUF that the
// project's loader reads; a second invocation resumes and reproduces the same model bit for bit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { grok } from './cli-helpers.js';
import { loadModel } from '../src/model/loader.js';
import { Tokenizer } from '../src/tokenizer/sentencepiece.js';

const EXCERPT = fs.readFileSync(path.resolve('models/default/val-excerpt.txt'), 'utf8');

function recipe(dir: string, steps: number) {
  return {
    name: 'tiny test model',
    data: { train: path.join(dir, 'train.txt'), val: path.join(dir, 'val.txt') },
    tokenizer: { vocab_size: 400 },
    model: {
      emb_size: 16, num_layers: 1, num_q_heads: 2, num_kv_heads: 1, key_size: 8, ffn_size: 16,
      num_experts: 4, num_selected_experts: 2, sequence_len: 16, attn_output_multiplier: 0.35,
    },
    train: {
      seed: 3, batch_size: 2, seq_len: 16, steps, lr: 0.01, min_lr: 0.001, warmup: 2, weight_decay: 0.1,
      beta1: 0.9, beta2: 0.95, eps: 1e-8, grad_clip: 1, aux_coef: 0.01, eval_every: 0, eval_tokens: 64, checkpoint_every: 2,
    },
  };
}

test('grok train: writes tokenizer.model, model.gguf (loadable, same vocabulary) and metrics; resume gives the same file', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-train-cli-'));
  const quiet = process.stderr.write;
  try {
    fs.writeFileSync(path.join(dir, 'train.txt'), EXCERPT.slice(0, 2800));
    fs.writeFileSync(path.join(dir, 'val.txt'), EXCERPT.slice(2800));
    const cfg = path.join(dir, 'train.json');
    fs.writeFileSync(cfg, JSON.stringify(recipe(dir, 6)));
    const out = path.join(dir, 'out'), work = path.join(dir, 'work');
    process.stderr.write = () => true;
    assert.equal((await grok('train', '--config', cfg, '--out', out, '--work', work, '--no-progress')).code, 0);
    const gguf1 = fs.readFileSync(path.join(out, 'model.gguf'));
    const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    assert.equal(metrics.step, 6);
    assert.equal(metrics.tokensTrained, 6 * 2 * 16);
    assert.ok(metrics.valLoss > 0 && metrics.valLoss < Math.log(400) + 0.5, `val loss ${metrics.valLoss}`);
    assert.equal(metrics.expertShare.length, 1);
    assert.ok(Math.abs(metrics.expertShare[0].reduce((a: number, b: number) => a + b, 0) - 1) < 1e-3);

    // The GGUF's vocabulary is the tokenizer's, and the loader's config is the recipe's.
    const tok = Tokenizer.fromFile(path.join(out, 'tokenizer.model'));
    const { model, source } = await loadModel(path.join(out, 'model.gguf'));
    const pieces = source.metadata.get('tokenizer.ggml.tokens') as string[];
    assert.equal(pieces.length, tok.vocabSize);
    for (let i = 0; i < pieces.length; i++) assert.equal(pieces[i], tok.idToPiece(i));
    assert.equal(model.config.nExperts, 4);
    assert.equal(model.config.contextLength, 16);

    // Same recipe, interrupted after 3 steps then resumed: the identical model file.
    fs.rmSync(out, { recursive: true });
    fs.rmSync(work, { recursive: true });
    assert.equal((await grok('train', '--config', cfg, '--out', out, '--work', work, '--steps', '3', '--no-progress')).code, 0);
    assert.equal((await grok('train', '--config', cfg, '--out', out, '--work', work, '--no-progress')).code, 0);
    assert.ok(fs.readFileSync(path.join(out, 'model.gguf')).equals(gguf1), 'resumed run wrote a different model.gguf');
  } finally {
    process.stderr.write = quiet;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('grok train: a recipe with a missing field is an error naming the recipe and the field', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-train-cli-'));
  try {
    const r = recipe(dir, 2) as { train: Record<string, unknown> };
    delete r.train.lr;
    const cfg = path.join(dir, 'bad.json');
    fs.writeFileSync(cfg, JSON.stringify(r));
    const r2 = await grok('train', '--config', cfg);
    assert.equal(r2.code, 1);
    assert.match(r2.err, /^grok: .*bad\.json: not a valid training recipe[\s\S]*lr/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
