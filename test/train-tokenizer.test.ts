// The BPE trainer's tokenizer.model against SentencePiece itself (Debian python3-sentencepiece): the
// shipped models/default/tokenizer.model and a freshly trained one must load in SentencePiece and in our
// Tokenizer and encode validation text (and awkward strings) to identical ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { trainBpe, preTokenize, normalize } from '../src/train/bpe.js';
import { writeModelProto, readModelProto, PieceType, ModelType } from '../src/tokenizer/protobuf.js';
import { Tokenizer } from '../src/tokenizer/sentencepiece.js';
import { probeTool, toolTest } from './cross-check.js';

const SHIPPED = path.resolve('models/default/tokenizer.model');
const EXCERPT = fs.readFileSync(path.resolve('models/default/val-excerpt.txt'), 'utf8');
/** SentencePiece in Python (Debian: python3-sentencepiece, in /usr/bin/python3; pip: sentencepiece), probed once. */
const sentencepiece = await probeTool('SentencePiece (python3 with the sentencepiece module)', () => {
  for (const py of ['python3', '/usr/bin/python3']) {
    const r = spawnSync(py, ['-c', 'import sentencepiece'], { encoding: 'utf8' });
    if (!r.error && r.status === 0) return py;
  }
  throw new Error('no python3 on PATH or at /usr/bin/python3 can import sentencepiece (Debian: apt-get install python3-sentencepiece)');
});
const PYTHON = sentencepiece.value ?? 'python3';

const AWKWARD = [
  'In the beginning God created the heaven and the earth.',
  '  two leading spaces,   three inside, trailing  ',
  'Chapter 12, verse 3: 1611 and 2024.',
  '\tTabs\tand\nnewlines\n\nand a blank line',
  'café naïve — “quotes” ½ 中文 😀 Ωμέγα',
  'LORD\'s house; (selah)! what?',
  '\n',
  'x',
];

/** Ids from SentencePiece for each text (no BOS/EOS), via Debian's python3-sentencepiece. */
function sentencePieceIds(modelFile: string, texts: string[]): number[][] {
  const script = [
    'import sys, json',
    'import sentencepiece as spm',
    'sp = spm.SentencePieceProcessor(model_file=sys.argv[1])',
    'texts = json.load(sys.stdin)',
    'json.dump([sp.encode(t) for t in texts], sys.stdout)',
  ].join('\n');
  const r = spawnSync(PYTHON, ['-c', script, modelFile], { input: JSON.stringify(texts), encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.error || r.status !== 0) assert.fail(`SentencePiece (${PYTHON}) failed: ${r.error?.message ?? r.stderr}`);
  return JSON.parse(r.stdout) as number[][];
}

function compare(modelFile: string, texts: string[]): void {
  const ours = Tokenizer.fromFile(modelFile);
  const theirs = sentencePieceIds(modelFile, texts);
  texts.forEach((t, i) => {
    assert.deepEqual(ours.encode(t), theirs[i], `ids differ for ${JSON.stringify(t.slice(0, 60))}`);
    assert.equal(ours.decode(theirs[i]), t);
  });
}

toolTest(sentencepiece, 'shipped tokenizer.model: SentencePiece and our Tokenizer give identical ids on validation text', () => {
  const lines = EXCERPT.split('\n');
  compare(SHIPPED, [EXCERPT, ...lines, ...AWKWARD]);
});

toolTest(sentencepiece, 'a freshly trained BPE model: Grok-style id layout, scores −rank, identical ids in SentencePiece', () => {
  const { model, merges, chars } = trainBpe(EXCERPT, { vocabSize: 600 });
  const p = model.pieces;
  assert.equal(p.length, 600);
  assert.deepEqual(p.slice(0, 4).map((x) => [x.piece, x.type]), [
    ['[PAD]', PieceType.CONTROL], ['[BOS]', PieceType.CONTROL], ['[EOS]', PieceType.CONTROL], ['[UNK]', PieceType.UNKNOWN],
  ]);
  assert.equal(p[4].piece, '<0x00>');
  assert.equal(p[4 + 0xab].piece, '<0xAB>');
  assert.equal(p[259].piece, '<0xFF>');
  assert.ok(p.slice(4, 260).every((x) => x.type === PieceType.BYTE));
  const normal = p.slice(260);
  assert.equal(normal.length, merges.length + chars.length);
  normal.forEach((x, i) => { assert.equal(x.type, PieceType.NORMAL); assert.equal(x.score, -i); });
  // No piece mixes in a newline or digit, and ▁ only starts pieces (words never merge across spaces).
  for (const m of merges) {
    assert.ok(!/[\n0-9]/.test(m), m);
    assert.ok(!m.slice(1).includes('\u2581'), m);
  }
  assert.equal(model.trainerSpec?.modelType, ModelType.BPE);
  assert.equal(model.trainerSpec?.byteFallback, true);
  assert.equal(model.trainerSpec?.splitDigits, true);
  assert.equal(model.normalizerSpec?.addDummyPrefix, true);

  const bytes = writeModelProto(model);
  assert.deepEqual(readModelProto(bytes, 'fresh').pieces, model.pieces);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grok-bpe-'));
  try {
    const file = path.join(dir, 'tokenizer.model');
    fs.writeFileSync(file, bytes);
    compare(file, [EXCERPT, ...AWKWARD]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('BPE merges follow pair frequency on a hand-countable corpus', () => {
  // Words ▁ab ×3, ▁abc ×2, ▁c ×1 (after normalisation). Pair counts: (▁,a) 5, (a,b) 5, (b,c) 2, (▁,c) 1.
  // Ties break by the merged string: "ab" < "▁a" (U+2581 sorts after ASCII). Then (▁,ab) 5, then (▁ab,c) 2.
  const text = 'ab ab ab abc abc c';
  assert.deepEqual(preTokenize(normalize(text)), ['▁ab', '▁ab', '▁ab', '▁abc', '▁abc', '▁c']);
  const { merges } = trainBpe(text, { vocabSize: 4 + 256 + 4 + 3 });
  assert.deepEqual(merges, ['ab', '▁ab', '▁abc']);
});
