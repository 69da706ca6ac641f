// SentencePiece tokenizer: SentencePiece's own goldens (test/data/tokenizer/grok-1-golden.json, generated with
// sentencepiece 0.1.97), a table of sample encodings made with SentencePiece, hand-derived decode rules (sentencepiece_processor.cc), malformed
// model files, the ModelProto writer, and the CLI functions.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FormatError } from '../src/base/errors.js';
import { PieceType, readModelProto, writeModelProto, type ModelProto } from '../src/tokenizer/protobuf.js';
import { Tokenizer } from '../src/tokenizer/sentencepiece.js';
import { grok } from './cli-helpers.js';
import { TOKENIZER_GOLDEN, TOKENIZER_MODEL } from './fixtures.js';
import { mulberry32 as rng } from './random.js';

const MODEL = TOKENIZER_MODEL;
const GOLDEN = TOKENIZER_GOLDEN;
const modelBytes = readFileSync(MODEL);
const golden = JSON.parse(readFileSync(GOLDEN, 'utf8')) as {
  encode: { text: string; ids: number[]; pieces: string[] }[];
  decode: { ids: number[]; text: string }[];
};
const tok = Tokenizer.fromModelProto(modelBytes, MODEL);

function streamDecode(t: Tokenizer, ids: number[]): { text: string; chunks: string[] } {
  const d = t.createStreamDecoder();
  const chunks = ids.map((id) => d.push(id));
  chunks.push(d.flush());
  return { text: chunks.join(''), chunks };
}

test('Grok-1 tokenizer facts (Grok-1 tokenizer.model)', () => {
  assert.equal(tok.vocabSize, 131072);
  assert.deepEqual([tok.padId, tok.bosId, tok.eosId, tok.unkId], [0, 1, 2, 3]);
  assert.deepEqual([0, 1, 2, 3, 4, 14, 24, 32, 47, 69, 324, 325, 130089].map((i) => tok.idToPiece(i)), [
    '[PAD]', '[BOS]', '[EOS]', '[UNK]', '\n', '0', '\t', '  ', '<|separator|>', '<0x00>', '<0xFF>', '\u2581\u2581', '\u2581',
  ]);
  assert.equal(tok.byteFallback, true);
  assert.equal(tok.addDummyPrefix, true);
  assert.equal(tok.removeExtraWhitespaces, false);
  assert.equal(tok.unkSurface, '[UNK]');
});

test('every golden encode case: ids and pieces equal SentencePiece', () => {
  assert.equal(golden.encode.length, 198);
  for (const c of golden.encode) {
    assert.deepEqual(tok.encode(c.text), c.ids, `ids of ${JSON.stringify(c.text)}`);
    assert.deepEqual(tok.encodeAsPieces(c.text), c.pieces, `pieces of ${JSON.stringify(c.text)}`);
  }
});

test('every golden decode case equals SentencePiece, and so does the stream decoder', () => {
  assert.equal(golden.decode.length, 60);
  for (const c of golden.decode) {
    assert.equal(tok.decode(c.ids), c.text, `decode ${JSON.stringify(c.ids)}`);
    assert.equal(streamDecode(tok, c.ids).text, c.text, `stream decode ${JSON.stringify(c.ids)}`);
  }
  // The encode goldens decode back to their text (as SentencePiece does), except that `▁` reads as a space.
  for (const c of golden.encode) {
    const want = c.text.replaceAll('\u2581', ' ');
    assert.equal(tok.decode(c.ids), want);
    assert.equal(streamDecode(tok, c.ids).text, want);
  }
});

test('extra SentencePiece cases: 13+ languages, code, whitespace runs, emoji, control characters, malformed UTF-8, documents', () => {
  // Expected values produced by SentencePiece 0.1.97 itself (bench/tokenize-make-cases.ts).
  const file = path.resolve('test/tokenizer-sp-cases.json');
  const { cases } = JSON.parse(readFileSync(file, 'utf8')) as { cases: { kind: string; t?: string; b?: string; d?: number[]; expected: unknown }[] };
  const kinds = new Map<string, number>();
  for (const c of cases) {
    kinds.set(c.kind, (kinds.get(c.kind) ?? 0) + 1);
    if (c.t !== undefined) assert.deepEqual(tok.encode(c.t), c.expected, `${c.kind}: ${JSON.stringify(c.t.slice(0, 80))}`);
    else if (c.b !== undefined) assert.deepEqual(tok.encode(Buffer.from(c.b, 'base64')), c.expected, `bytes ${c.b}`);
    else {
      assert.equal(tok.decode(c.d!), c.expected, `decode ${JSON.stringify(c.d)}`);
      assert.equal(streamDecode(tok, c.d!).text, c.expected, `stream decode ${JSON.stringify(c.d)}`);
    }
  }
  for (const k of ['sentence', 'random', 'bytes', 'document', 'run', 'decode']) assert.ok((kinds.get(k) ?? 0) > 0, `no ${k} cases`);
});

// Sample encodings made with SentencePiece (0.2.2 and 0.1.97 agree); pieces abbreviated where the ids say it all.
const TABLE: [string, number[], string[]?][] = [
  ['The answer to life the universe and everything is of course', [422, 3033, 356, 1180, 333, 9072, 360, 2175, 391, 359, 1805]],
  ['Hello world', [11770, 1135], ['▁Hello', '▁world']],
  ['Hello  world', [11770, 325, 8455], ['▁Hello', '▁▁', 'world']],
  [' leading space', [325, 15354, 2150], ['▁▁', 'leading', '▁space']],
  ['trailing space ', [25601, 2150, 130089], ['▁trailing', '▁space', '▁']],
  ['a   b', [327, 325, 348], ['▁a', '▁▁', '▁b']],
  ['12345', [130089, 15, 16, 17, 18, 19], ['▁', '1', '2', '3', '4', '5']],
  ['3.14159', [130089, 17, 130109, 15, 18, 15, 19, 23]],
  ['year 2024!', [727, 130089, 16, 14, 16, 18, 130166]],
  ['line1\nline2', [1585, 15, 4, 1075, 16], ['▁line', '1', '\n', 'line', '2']],
  ['para\n\n\nend', [8259, 6, 493], ['▁para', '\n\n\n', 'end']],
  ['\n', [130089, 4]],
  ['A\r\nB', [388, 130169, 4, 130131], ['▁A', '\r', '\n', 'B']],
  ['\ttab', [130089, 24, 7481]],
  ['x\t\ty', [1734, 25, 130107]],
  ['emoji 😀 ok', [44785, 130089, 309, 228, 221, 197, 4806], ['▁emoji', '▁', '<0xF0>', '<0x9F>', '<0x98>', '<0x80>', '▁ok']],
  ['🤖', [130089, 309, 228, 233, 219]],
  ['日本語のテキストです。', [54164, 130670, 130199, 121604, 18698, 11818, 130202], ['▁日本', '語', 'の', 'テキ', 'スト', 'です', '。']],
  ['こんにちは世界', [130089, 119701, 130208, 130327, 130221, 34415]],
  ['naïve café', [54091, 30689], ['▁naïve', '▁café']],
  ['\u216b', [130089, 295, 202, 240]],
  ['\uff21 fullwidth', [130089, 308, 257, 230, 1453, 3811]],
  ['\u00a0nbsp', [6130, 7668], ['▁\u00a0', 'nbsp']],
  ['<|separator|>', [130089, 47]],
  ['[BOS]', [794, 130131, 2917, 130165], ['▁[', 'B', 'OS', ']']],
  ['  ', [1990], ['▁▁▁']],
  [' ', [325]],
  ['', []],
];

test('sample encodings made with SentencePiece, and they decode back to the input', () => {
  for (const [text, ids, pieces] of TABLE) {
    assert.deepEqual(tok.encode(text), ids, JSON.stringify(text));
    if (pieces) assert.deepEqual(tok.encodeAsPieces(text), pieces, JSON.stringify(text));
    assert.equal(tok.decode(ids), text);
  }
  assert.deepEqual(tok.encode('Hello world', { bos: true, eos: true }), [1, 11770, 1135, 2]);
  assert.deepEqual(tok.encode('', { bos: true }), [1]);
});

test('decode rules of SentencePiece sentencepiece_processor.cc (hand-derived cases)', () => {
  assert.equal(tok.decode([1, 422, 2]), 'The');
  assert.equal(tok.decode([130089]), '');
  assert.equal(tok.decode([130089, 422]), ' The');
  assert.equal(tok.decode([325]), ' ');
  assert.equal(tok.decode([32]), '  '); // two-space USER_DEFINED piece
  assert.equal(tok.decode([3]), '[UNK]');
  assert.equal(tok.decode([309]), '\uFFFD'); // <0xF0> alone
  assert.equal(tok.decode([309, 228]), '\uFFFD\uFFFD'); // F0 9F: one U+FFFD per byte, unlike TextDecoder
  assert.equal(tok.decode([309, 228, 221, 197]), '😀');
  assert.equal(tok.decode([69 + 0xc0, 69 + 0x80]), '\uFFFD\uFFFD'); // overlong
  assert.equal(tok.decode([69 + 0xed, 69 + 0xa0, 69 + 0x80]), '\uFFFD\uFFFD\uFFFD'); // surrogate D800
  assert.equal(tok.decode([69 + 0x41, 422]), 'A▁The'.replace('▁', ' ')); // byte text ends the leading-space rule
  assert.equal(tok.decode([1, 130089, 422]), ' The'); // CONTROL does not end it
  assert.equal(tok.decode([422, 422]), 'The The');
  assert.equal(tok.decode([]), '');
});

test('decode rejects ids out of range with a clear error', () => {
  assert.throws(() => tok.decode([5, 131072]), /token id 131072 at position 1 is out of range \(vocabulary size 131072\)/);
  assert.throws(() => tok.decode([-1]), /token id -1 at position 0 is out of range/);
  assert.throws(() => tok.decode([1.5]), /token id 1.5/);
  assert.throws(() => tok.idToPiece(200000), /out of range/);
  assert.throws(() => tok.createStreamDecoder().push(131072), /out of range/);
});

test('stream decoder: equals decode on random id lists and emits complete characters early', () => {
  const r = rng(7);
  const byteIds = Array.from({ length: 256 }, (_, b) => 69 + b);
  const special = [0, 1, 2, 3, 4, 13, 14, 24, 32, 47, 325, 130089, 1990];
  for (let n = 0; n < 3000; n++) {
    const ids: number[] = [];
    const len = Math.floor(r() * 16);
    for (let i = 0; i < len; i++) {
      const x = r();
      ids.push(x < 0.45 ? byteIds[Math.floor(r() * 256)] : x < 0.6 ? special[Math.floor(r() * special.length)] : Math.floor(r() * 131072));
    }
    assert.equal(streamDecode(tok, ids).text, tok.decode(ids), JSON.stringify(ids));
  }
  // 😀 = F0 9F 98 80: nothing until the fourth byte, then the character at once.
  assert.deepEqual(streamDecode(tok, [44785, 130089, 309, 228, 221, 197, 4806]).chunks, ['emoji', ' ', '', '', '', '😀', ' ok', '']);
  // F0 9F then ASCII byte 'A': the stalled bytes become two U+FFFD as soon as 'A' shows they cannot complete.
  assert.deepEqual(streamDecode(tok, [309, 228, 69 + 0x41]).chunks, ['', '', '\uFFFD\uFFFDA', '']);
  // Incomplete bytes at the end come out at flush.
  assert.deepEqual(streamDecode(tok, [422, 309, 228]).chunks, ['The', '', '', '\uFFFD\uFFFD']);
  // The leading-space rule: the first piece loses its ▁, later ones keep it.
  assert.deepEqual(streamDecode(tok, [130089, 422, 422]).chunks, ['', ' The', ' The', '']);
});

test('raw bytes and lone surrogates: malformed UTF-8 handled as SentencePiece (one U+FFFD per byte)', () => {
  // 130308 is the piece "\uFFFD" (SentencePiece 0.1.97 gives [327, 130308, 130110] for b"a\xffb").
  assert.deepEqual(tok.encode(Uint8Array.from([0x61, 0xff, 0x62])), [327, 130308, 130110]);
  assert.deepEqual(tok.encode(Uint8Array.from([0x61, 0xff, 0x62])), tok.encode('a\uFFFDb'));
  assert.deepEqual(tok.encode(Uint8Array.from([0x61, 0xf0, 0x9f, 0x62])), tok.encode('a\uFFFD\uFFFDb'));
  assert.deepEqual(tok.encode('a\ud800b'), tok.encode('a\uFFFDb'));
});

test('fromPieces (the GGUF path) with Grok-1 settings reproduces the goldens', () => {
  const model = readModelProto(modelBytes, MODEL);
  const t = Tokenizer.fromPieces(model.pieces, { addDummyPrefix: true, removeExtraWhitespaces: false, unkSurface: '[UNK]', bosId: 1, eosId: 2, unkId: 3, padId: 0 }, 'gguf-metadata');
  assert.equal(t.byteFallback, true);
  for (const c of golden.encode) assert.deepEqual(t.encode(c.text), c.ids);
  for (const c of golden.decode) assert.equal(t.decode(c.ids), c.text);
  assert.throws(() => Tokenizer.fromPieces(model.pieces, { unkId: 5 }, 'gguf-metadata'), /gguf-metadata: unk id 5 does not name the UNKNOWN piece \(that is id 3\)/);
  assert.throws(() => Tokenizer.fromPieces([{ piece: 'a', score: 0, type: 1 }], {}, 'x.gguf'), /x.gguf: no UNKNOWN piece/);
  assert.throws(() => Tokenizer.fromPieces([{ piece: 'a', score: 0, type: 2 }, { piece: 'a', score: 0, type: 1 }], {}, 'x.gguf'), /piece 1 "a" is defined twice/);
  assert.throws(() => Tokenizer.fromPieces([{ piece: '<unk>', score: 0, type: 2 }], { byteFallback: true }, 'x.gguf'), /byte fallback is on but 256 BYTE pieces are missing/);
});

// ---------------------------------------------------------------------------------------------------
// ModelProto reader and writer

/** A small BPE model exercising every kind of piece and spec field. */
function smallModel(): ModelProto {
  const pieces = [
    { piece: '<unk>', score: 0, type: PieceType.UNKNOWN },
    { piece: '<s>', score: 0, type: PieceType.CONTROL },
    { piece: '</s>', score: 0, type: PieceType.CONTROL },
    { piece: '<sep>', score: 0, type: PieceType.USER_DEFINED },
    ...Array.from({ length: 256 }, (_, b) => ({ piece: `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, score: 0, type: PieceType.BYTE })),
    { piece: '▁t', score: -1, type: PieceType.NORMAL },
    { piece: 'he', score: -2, type: PieceType.NORMAL },
    { piece: '▁the', score: -3, type: PieceType.NORMAL },
    { piece: '▁', score: -4, type: PieceType.NORMAL },
    { piece: 't', score: -5, type: PieceType.NORMAL },
    { piece: 'h', score: -6, type: PieceType.NORMAL },
    { piece: 'e', score: -7, type: PieceType.NORMAL },
    { piece: 'é', score: -8.5, type: PieceType.NORMAL },
  ];
  return {
    pieces,
    trainerSpec: {
      input: ['a.txt', 'b.txt'], modelType: 2, vocabSize: pieces.length, characterCoverage: Math.fround(0.9995), inputSentenceSize: 12345678901234n,
      byteFallback: true, unkId: 0, bosId: 1, eosId: 2, padId: -1, unkSurface: ' \u2047 ', userDefinedSymbols: ['<sep>'], splitDigits: true,
      unknownFields: [{ field: 99, wireType: 0, data: Uint8Array.from([0x96, 0x01]) }],
    },
    normalizerSpec: { name: 'identity', precompiledCharsmap: new Uint8Array(0), addDummyPrefix: true, removeExtraWhitespaces: false },
  };
}

test('writer round-trip: the Grok-1 file is rewritten byte for byte', () => {
  const model = readModelProto(modelBytes, MODEL);
  assert.equal(model.pieces.length, 131072);
  assert.equal(model.trainerSpec?.modelType, 2);
  assert.equal(model.normalizerSpec?.name, 'identity');
  assert.ok(Object.is(model.pieces[325].score, -0)); // ▁▁ is stored as −0.0
  const written = writeModelProto(model);
  assert.equal(written.length, modelBytes.length);
  assert.ok(Buffer.from(written).equals(modelBytes), 'bytes differ');
});

test('writer round-trip: read(write(m)) equals m for a model with every kind of field', () => {
  const m = smallModel();
  const bytes = writeModelProto(m);
  const back = readModelProto(bytes, 'small.model');
  assert.deepEqual(back, { ...m, pieces: m.pieces.map((p) => ({ ...p, score: Math.fround(p.score) })) });
  assert.ok(Buffer.from(writeModelProto(back)).equals(Buffer.from(bytes)));
  // hand-checked encodings: pad_id −1 is a 10-byte varint; a piece is 0a len 0a len text 15 f32 [18 type]
  const padKey = Buffer.from([0xd8, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  assert.ok(Buffer.from(bytes).includes(padKey), 'pad_id -1 encoding');
  assert.deepEqual([...bytes.subarray(0, 16)], [0x0a, 0x0e, 0x0a, 0x05, 0x3c, 0x75, 0x6e, 0x6b, 0x3e, 0x15, 0, 0, 0, 0, 0x18, 0x02]);
  // and the tokenizer built from it works: ▁ t h e → ▁t he → ▁the
  const t = Tokenizer.fromModelProto(bytes, 'small.model');
  assert.deepEqual(t.encodeAsPieces('the<sep>é€'), ['▁the', '<sep>', 'é', '<0xE2>', '<0x82>', '<0xAC>']);
  assert.equal(t.decode(t.encode('the<sep>é€')), 'the<sep>é€');
  assert.equal(t.decode([0]), ' \u2047 ');
});

function expectFormatError(bytes: Uint8Array, re: RegExp, file = 'bad.model'): void {
  assert.throws(
    () => Tokenizer.fromModelProto(bytes, file),
    (e: unknown) => e instanceof FormatError && e.message.startsWith(`${file}: `) && re.test(e.message),
    `expected FormatError matching ${re}`,
  );
}

test('malformed model files: wrong wire types, absurd lengths, bad varints, missing pieces', () => {
  const b = (...x: number[]) => Uint8Array.from(x);
  expectFormatError(b(), /no pieces/);
  expectFormatError(b(0x08, 0x01), /ModelProto\.pieces\[0\]: wrong wire type 0 \(varint\), expected 2 \(length-delimited\)/);
  expectFormatError(b(0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f), /ModelProto\.pieces\[0\]: length 4294967295 exceeds the 0 bytes left/);
  expectFormatError(b(0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01), /varint longer than 10 bytes/);
  expectFormatError(b(0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), /varint overflows 64 bits/);
  expectFormatError(b(0x0a, 0x80), /truncated varint/);
  expectFormatError(b(0x0a, 0x05, 0x15, 0, 0, 0, 0), /ModelProto\.pieces\[0\]: piece has no text/);
  expectFormatError(b(0x0a, 0x02, 0x0a, 0x00), /pieces\[0\]\.piece: piece text is empty/);
  expectFormatError(b(0x0a, 0x04, 0x0a, 0x02, 0xc3, 0x28), /pieces\[0\]\.piece: string is not valid UTF-8/);
  expectFormatError(b(0x0a, 0x05, 0x0a, 0x01, 0x61, 0x10, 0x00), /pieces\[0\]\.score: wrong wire type 0 \(varint\), expected 5 \(fixed32\)/);
  expectFormatError(b(0x0a, 0x05, 0x0a, 0x01, 0x61, 0x18, 0x09), /pieces\[0\]\.type: unknown piece type 9/);
  expectFormatError(b(0x0a, 0x05, 0x0a, 0x01, 0x61, 0x15, 0x00), /pieces\[0\]\.score: truncated fixed32/);
  expectFormatError(b(0x0a, 0x03, 0x0a, 0x01, 0x61, 0x0b), /wire type 3 \(group start\)/);
  expectFormatError(b(0x0a, 0x03, 0x0a, 0x01, 0x61, 0x12, 0x02, 0x18, 0x02), /no UNKNOWN piece/); // BPE, one piece
  expectFormatError(b(0x0a, 0x03, 0x0a, 0x01, 0x61, 0x12, 0x02, 0x1a, 0x00), /ModelProto\.trainer_spec\.model_type: wrong wire type 2/);
  expectFormatError(b(0x0a, 0x03, 0x0a, 0x01, 0x61, 0x1a, 0x02, 0x18, 0x80), /normalizer_spec\.add_dummy_prefix: truncated varint/);
  expectFormatError(b(0x0a, 0x03, 0x0a, 0x01, 0x61, 0x00), /field number 0 is invalid/);
  expectFormatError(b(0x0a, 0x03, 0x0a, 0x01, 0x61, 0x0f), /ModelProto\.#1: unsupported wire type 7/);
  // a valid protobuf that is not a usable tokenizer
  expectFormatError(b(0x0a, 0x03, 0x0a, 0x01, 0x61), /model_type is UNIGRAM; only BPE models are supported/);
  const m = smallModel();
  m.pieces = m.pieces.filter((p) => p.type !== PieceType.UNKNOWN);
  expectFormatError(writeModelProto(m), /no UNKNOWN piece/);
  const m2 = smallModel();
  m2.normalizerSpec!.precompiledCharsmap = Uint8Array.from([1, 2, 3, 4, 5]);
  expectFormatError(writeModelProto(m2), /precompiled_charsmap is not empty/);
});

test('malformed model files: truncation at every offset gives a FormatError, never a crash or hang', () => {
  const bytes = writeModelProto(smallModel());
  const loaded: number[] = [];
  // every offset in the first pieces and in the specs at the end; every 5th in between (same structure)
  const offsets = [...bytes.keys()].filter((n) => n < 400 || n > bytes.length - 600 || n % 5 === 0);
  for (const n of offsets) {
    const cut = bytes.subarray(0, n);
    try {
      Tokenizer.fromModelProto(cut, 'cut.model');
      loaded.push(n);
    } catch (e) {
      assert.ok(e instanceof FormatError, `offset ${n}: ${String(e)}`);
      assert.match(e.message, /^cut\.model: /);
    }
  }
  // Only the cut right after trainer_spec is a complete (BPE) model: it loads with the default normalizer.
  assert.deepEqual(loaded, [writeModelProto({ ...smallModel(), normalizerSpec: undefined }).length]);
  // The Grok-1 file: truncated inside pieces, inside trainer_spec and inside normalizer_spec.
  for (const n of [1, 2, 3, 9, 17, 1000, 1001, 1_000_003, modelBytes.length - 2000, modelBytes.length - 500, modelBytes.length - 30, modelBytes.length - 1]) {
    let parsed: ModelProto;
    try {
      parsed = readModelProto(modelBytes.subarray(0, n), MODEL);
    } catch (e) {
      assert.ok(e instanceof FormatError && /truncated|exceeds/.test(e.message), `cut at ${n}: ${String(e)}`);
      continue;
    }
    // A cut that falls between two pieces is a well-formed message; it is still no usable tokenizer.
    assert.equal(parsed.trainerSpec, undefined, `cut at ${n}`);
    assert.throws(() => Tokenizer.fromModel(parsed, MODEL), /model_type is UNIGRAM/);
  }
});

test('malformed model files: random byte corruption gives a FormatError or a valid model, never a crash', () => {
  const bytes = writeModelProto(smallModel());
  const r = rng(11);
  for (let k = 0; k < 2000; k++) {
    const c = Uint8Array.from(bytes);
    for (let j = 0; j < 3; j++) c[Math.floor(r() * c.length)] = Math.floor(r() * 256);
    try {
      Tokenizer.fromModelProto(c, 'corrupt.model').encode('the é');
    } catch (e) {
      assert.ok(e instanceof FormatError, `corruption ${k}: ${String(e)}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------------
// CLI

test('CLI: grok tokenize / detokenize', async () => {
  let r = await grok('tokenize', '--tokenizer', MODEL, 'Hello world');
  assert.deepEqual(r, { code: 0, out: '[11770,1135]\n', err: '' });
  r = await grok('tokenize', '--tokenizer', MODEL, '--bos', '--eos', 'Hello world');
  assert.equal(r.out, '[1,11770,1135,2]\n');
  r = await grok('tokenize', '--tokenizer', MODEL, '--pieces', 'Hello  world');
  assert.equal(r.out, '["▁Hello","▁▁","world"]\n');

  const dir = mkdtempSync(path.join(tmpdir(), 'tok-cli-'));
  try {
    const f = path.join(dir, 'in.jsonl');
    writeFileSync(f, ['"12345"', '"emoji 😀 ok"', '""'].join('\n') + '\n');
    r = await grok('tokenize', '--tokenizer', MODEL, '--jsonl', f);
    assert.deepEqual(r, { code: 0, out: '[130089,15,16,17,18,19]\n[44785,130089,309,228,221,197,4806]\n[]\n', err: '' });
    writeFileSync(f, '"ok"\n42\n');
    r = await grok('tokenize', '--tokenizer', MODEL, '--jsonl', f);
    assert.equal(r.code, 2);
    assert.equal(r.err, `grok: ${f}:2: expected a JSON string, got number\n`);
    const ids = path.join(dir, 'ids.jsonl');
    writeFileSync(ids, '[422, 3033]\n[309, 228]\n');
    r = await grok('detokenize', '--tokenizer', MODEL, '--jsonl', ids);
    assert.deepEqual(r, { code: 0, out: '"The answer"\n"\\ufffd\\ufffd"\n'.replace(/\\ufffd/g, '\uFFFD'), err: '' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  r = await grok('detokenize', '--tokenizer', MODEL, '1,422,3033,2');
  assert.deepEqual(r, { code: 0, out: 'The answer\n', err: '' });
  r = await grok('detokenize', '--tokenizer', MODEL, '--json', '[130089, 422]');
  assert.equal(r.out, '" The"\n');

  // errors: one line, non-zero code, no stack
  r = await grok('detokenize', '--tokenizer', MODEL, '1,999999');
  assert.equal(r.code, 1);
  assert.match(r.err, /^grok: .*token id 999999 at position 1 is out of range \(vocabulary size 131072\)\n$/);
  r = await grok('detokenize', '--tokenizer', MODEL, '1,x');
  assert.deepEqual([r.code, r.err], [2, "grok: token ids: 'x' is not a token id (expected non-negative integers like 1,2,3)\n"]);
  r = await grok('tokenize', 'Hello');
  assert.equal(r.code, 2);
  assert.match(r.err, /^grok: --tokenizer <tokenizer.model\|tokenizer.tok.json> is required \(or --model <model> for the tokenizer a model carries\)\n/);
  r = await grok('tokenize', '--tokenizer', '/nonexistent/tokenizer.model', 'x');
  assert.equal(r.code, 1);
  assert.match(r.err, /^grok: \/nonexistent\/tokenizer.model: cannot read tokenizer file: no such file\n$/);
  assert.equal(r.err.split('\n').length, 2);
  r = await grok('tokenize', '--tokenizer', MODEL, '--frobnicate', 'x');
  assert.equal(r.code, 2);
  r = await grok('tokenize', '--tokenizer', GOLDEN, 'x');
  assert.equal(r.code, 1);
  assert.match(r.err, /^grok: .*grok-1-golden\.json: /);
  assert.equal(r.err.split('\n').length, 2);
});
