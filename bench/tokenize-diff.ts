// Randomized differential test: our Tokenizer against SentencePiece itself (python3-sentencepiece).
// Not in the test suite (CI need not have python3-sentencepiece). Run:
//   npx tsc -p . && node dist/bench/tokenize-diff.js [--n 5000] [--seed 1] [--tokenizer test/data/tokenizer/grok-1-tokenizer.model]
// Compares: encode ids of random strings, encode of raw bytes with malformed UTF-8, pieces, decode of random
// id lists, the stream decoder, slices of the benchmark text, and three variant models written with
// writeModelProto (remove_extra_whitespaces on, dummy prefix off, byte fallback off) that SentencePiece loads.
// Exit code 1 when any mismatch is found.

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { PieceType, readModelProto, writeModelProto, type ModelProto } from '../src/tokenizer/protobuf.js';
import { Tokenizer } from '../src/tokenizer/sentencepiece.js';
import { buildBenchText, piecesByScript, randomBytes, randomIds, randomText, rng } from './tokenize-corpus.js';
import { checkPython, spBatch, spVersion, type SpRequest } from './tokenize-sp.js';
import { TOKENIZER_MODEL } from '../test/fixtures.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '5000' },
    seed: { type: 'string', default: '1' },
    tokenizer: { type: 'string', default: TOKENIZER_MODEL },
  },
});
const N = Number(values.n);
const seed = Number(values.seed);
const modelPath = values.tokenizer!;

checkPython();
console.log(`SentencePiece ${spVersion()} vs grok-ts; ${modelPath}; n=${N} seed=${seed}`);

const tok = Tokenizer.fromFile(modelPath);
const pieces = Array.from({ length: tok.vocabSize }, (_, i) => tok.idToPiece(i));
const byScript = piecesByScript(pieces);
const vocabText = pieces.filter((_, i) => tok.pieceType(i) === PieceType.NORMAL).map((p) => p.replaceAll('\u2581', ' '));
const r = rng(seed);

let failures = 0;
const show = (kind: string, input: unknown, ours: unknown, theirs: unknown): void => {
  failures++;
  if (failures <= 15) console.log(`MISMATCH ${kind}: input ${JSON.stringify(input)}\n  ours   ${JSON.stringify(ours)}\n  theirs ${JSON.stringify(theirs)}`);
};
const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

function compareEncode(t: Tokenizer, model: string, texts: string[], label: string): void {
  const theirs = spBatch(model, texts.map((x) => ({ t: x })));
  let bad = 0;
  texts.forEach((x, i) => {
    const ours = t.encode(x);
    if (!same(ours, theirs[i])) {
      bad++;
      show(label, x, ours, theirs[i]);
    }
  });
  console.log(`${label}: ${texts.length} strings, ${bad} mismatches`);
}

// 1. random strings: ids, and pieces for a third of them
const texts = Array.from({ length: N }, () => randomText(r, byScript, vocabText));
compareEncode(tok, modelPath, texts, 'encode ids (random strings)');
{
  const sub = texts.filter((_, i) => i % 3 === 0);
  const theirs = spBatch(modelPath, sub.map((p) => ({ p })));
  let bad = 0;
  sub.forEach((x, i) => {
    const ours = tok.encodeAsPieces(x);
    if (!same(ours, theirs[i])) {
      bad++;
      show('pieces', x, ours, theirs[i]);
    }
  });
  console.log(`encode pieces: ${sub.length} strings, ${bad} mismatches`);
}

// 2. raw bytes with malformed UTF-8
{
  const bytes = Array.from({ length: Math.ceil(N / 5) }, () => randomBytes(r, byScript, vocabText));
  const theirs = spBatch(modelPath, bytes.map((b) => ({ b: Buffer.from(b).toString('base64') })));
  let bad = 0;
  bytes.forEach((b, i) => {
    const ours = tok.encode(b);
    if (!same(ours, theirs[i])) {
      bad++;
      show('bytes', Buffer.from(b).toString('hex'), ours, theirs[i]);
    }
  });
  console.log(`encode malformed UTF-8 bytes: ${bytes.length} inputs, ${bad} mismatches`);
}

// 3. decode of random id lists, and the stream decoder
{
  const byteIds = pieces.map((_, i) => i).filter((i) => tok.pieceType(i) === PieceType.BYTE);
  const special = pieces.map((_, i) => i).filter((i) => tok.pieceType(i) !== PieceType.NORMAL && tok.pieceType(i) !== PieceType.BYTE);
  special.push(325, 130089, 1990, 336); // ▁▁, ▁, ▁▁▁, ▁▁▁▁ on Grok-1: the leading-space rule
  const lists = Array.from({ length: N }, () => randomIds(r, tok.vocabSize, byteIds, special));
  const theirs = spBatch(modelPath, lists.map((d) => ({ d })));
  let bad = 0;
  let badStream = 0;
  lists.forEach((ids, i) => {
    const ours = tok.decode(ids);
    if (ours !== theirs[i]) {
      bad++;
      show('decode', ids, ours, theirs[i]);
    }
    const sd = tok.createStreamDecoder();
    let s = '';
    for (const id of ids) s += sd.push(id);
    s += sd.flush();
    if (s !== theirs[i]) {
      badStream++;
      show('stream decode', ids, s, theirs[i]);
    }
  });
  console.log(`decode: ${lists.length} id lists, ${bad} mismatches; stream decoder ${badStream} mismatches`);
}

// 4. long documents: slices of the benchmark text
{
  const text = buildBenchText(pieces, 1 << 20, seed);
  const docs: string[] = [];
  for (let i = 0; i < 20; i++) {
    const a = Math.floor(r() * (text.length - 50000));
    docs.push(text.slice(a, a + 5000 + Math.floor(r() * 45000)).replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '')); // no cut surrogate pairs
  }
  compareEncode(tok, modelPath, docs, 'encode long documents (5-50 KB)');
  // one long segment each: BPE over the whole run, as SentencePiece does
  const runs = ['a', ' ', '\u2581', '\n', '\t', '7', '日本', 'ab ', '😀', '\u0000', '<|mask|>', 'x\r\n', '\u3000', 'é'].map((u) => u.repeat(Math.ceil(200000 / u.length)));
  compareEncode(tok, modelPath, runs, 'encode 200 K-character runs of one pattern');
  // whole real files: Python standard library sources and Markdown docs (as read, up to 100 KB each)
  const files = realFiles(60, r);
  compareEncode(tok, modelPath, files, 'encode whole source/doc files');
}

// 5. variant models written by writeModelProto, loaded by SentencePiece
{
  const base = readModelProto(readFileSync(modelPath), modelPath);
  const dir = mkdtempSync(path.join(tmpdir(), 'spvar-'));
  const variants: [string, (m: ModelProto) => void][] = [
    ['remove_extra_whitespaces=true', (m) => (m.normalizerSpec!.removeExtraWhitespaces = true)],
    ['add_dummy_prefix=false', (m) => (m.normalizerSpec!.addDummyPrefix = false)],
    [
      'byte_fallback=false',
      (m) => {
        m.trainerSpec!.byteFallback = false;
        m.pieces = m.pieces.map((p) => (p.type === PieceType.BYTE ? { ...p, type: PieceType.NORMAL } : p));
      },
    ],
  ];
  try {
    for (const [name, edit] of variants) {
      const m = structuredClone(base);
      edit(m);
      const file = path.join(dir, `${name}.model`);
      writeFileSync(file, writeModelProto(m));
      const t = Tokenizer.fromFile(file);
      const vt = Array.from({ length: Math.ceil(N / 5) }, () => randomText(r, byScript, vocabText));
      compareEncode(t, file, vt, `variant ${name}: encode`);
      const sub = vt.slice(0, 300);
      const theirP = spBatch(file, sub.map((p) => ({ p })));
      let bad = 0;
      sub.forEach((x, i) => {
        const ours = t.encodeAsPieces(x);
        if (!same(ours, theirP[i])) {
          bad++;
          show(`variant ${name} pieces`, x, ours, theirP[i]);
        }
      });
      const lists = Array.from({ length: 300 }, () => t.encode(pick(vt)));
      const theirD = spBatch(file, lists.map((d) => ({ d })));
      lists.forEach((ids, i) => {
        if (t.decode(ids) !== theirD[i]) {
          bad++;
          show(`variant ${name} decode`, ids, t.decode(ids), theirD[i]);
        }
      });
      console.log(`variant ${name}: pieces+decode ${sub.length + lists.length} cases, ${bad} mismatches`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function realFiles(count: number, rand: () => number): string[] {
  const found: string[] = [];
  const walk = (dir: string, ext: string, depth: number): void => {
    if (depth > 4 || !existsSync(dir)) return;
    for (const name of readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      const st = statSync(p, { throwIfNoEntry: false });
      if (st?.isDirectory()) walk(p, ext, depth + 1);
      else if (st?.isFile() && name.endsWith(ext) && st.size < 100_000) found.push(p);
    }
  };
  walk('/usr/lib/python3.11', '.py', 0);
  walk(path.resolve('node_modules'), '.md', 0);
  const out: string[] = [];
  for (let i = 0; i < count && found.length > 0; i++) out.push(readFileSync(found[Math.floor(rand() * found.length)], 'utf8'));
  return out;
}

function pick<T>(a: T[]): T {
  return a[Math.floor(r() * a.length)];
}

console.log(failures === 0 ? 'ALL IDENTICAL' : `${failures} MISMATCHES`);
process.exitCode = failures === 0 ? 0 : 1;
