// Grok-2's tiktoken-style tokenizer (tokenizer.tok.json): the goldens made with tiktoken's own Rust core
// (test/data/tokenizer/grok2/golden.json, README.md beside it) through the library and through
// `grok tokenize/detokenize --jsonl`; the model fixtures' tiny tokenizer (specials first); the V1 word pattern's
// Rust regex semantics case by case and against a RegExp translation; heap merge = tiktoken's merge; bad files.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FormatError } from '../src/base/errors.js';
import { loadTokenizerFile } from '../src/tokenizer/load.js';
import { Tokenizer } from '../src/tokenizer/sentencepiece.js';
import { TiktokenTokenizer, V1_PATTERN, patternToRegExp, pieceEndV1, sglangAllowsSpecial } from '../src/tokenizer/tiktoken.js';
import { grok } from './cli-helpers.js';
import { DATA, TOKENIZER_MODEL } from './fixtures.js';
import { mulberry32 } from './random.js';

const DIR = path.join(DATA, 'tokenizer', 'grok2');
const TOK = path.join(DIR, 'tokenizer.tok.json');
const TINY = path.join(DIR, 'g2-tiny.tok.json');
const golden = JSON.parse(readFileSync(path.join(DIR, 'golden.json'), 'utf8')) as {
  tokenizer_sha256: string;
  pat_str: string;
  special_token_ids: Record<string, number>;
  encode: { category: string; text: string; ids: number[] }[];
  decode: { category: string; ids: number[]; text: string }[];
};
const tok = TiktokenTokenizer.fromFile(TOK);

function streamDecode(t: TiktokenTokenizer, ids: number[]): string {
  const d = t.createStreamDecoder();
  return ids.map((id) => d.push(id)).join('') + d.flush();
}

/** The V1 pieces of a text, by the scanner. */
function splitV1(text: string): string[] {
  const bin = Buffer.from(text, 'utf8').toString('latin1');
  const out: string[] = [];
  for (let i = 0; i < bin.length; ) {
    const j = pieceEndV1(bin, i, bin.length);
    out.push(Buffer.from(bin.slice(i, j), 'latin1').toString('utf8'));
    i = j;
  }
  return out;
}

/** The pieces of a text by a JavaScript RegExp (what a pat_str runs as). */
function splitRegExp(re: RegExp, text: string): string[] {
  return [...text.matchAll(re)].map((m) => m[0]);
}

test('Grok-2 test tokenizer facts: the golden\'s file, pattern and special ids', () => {
  assert.equal(createHash('sha256').update(readFileSync(TOK)).digest('hex'), golden.tokenizer_sha256);
  assert.equal(golden.pat_str, V1_PATTERN);
  assert.equal(tok.vocabSize, 101088);
  assert.equal(tok.pattern, V1_PATTERN);
  assert.deepEqual([tok.bosId, tok.eosId, tok.padId], [-1, 100258, 100256]);
  assert.ok(Object.keys(golden.special_token_ids).length >= 5);
  for (const [text, id] of Object.entries(golden.special_token_ids)) {
    assert.equal(tok.specialId(text), id, text);
    assert.ok(tok.isSpecial(id));
    assert.equal(tok.idToPiece(id), text);
    assert.deepEqual(tok.encode(text), [id], text);
  }
  assert.equal(tok.isSpecial(100255), false);
  // all 832 specials of the file are in SGLang's allowed set, so each one's text encodes to it
  let specials = 0;
  for (let id = 0; id < tok.vocabSize; id++) {
    if (!tok.isSpecial(id)) continue;
    specials++;
    const text = tok.idToPiece(id);
    assert.ok(sglangAllowsSpecial(text), text);
    assert.deepEqual(tok.encode(`a${text}b`), [64, id, 65], text);
  }
  assert.equal(specials, 832);
  assert.deepEqual([...tok.idToBytes(0)], [33]);
});

test('every golden encode case equals tiktoken, and decodes back to its text', () => {
  assert.equal(golden.encode.length, 364);
  const categories = new Set<string>();
  for (const c of golden.encode) {
    categories.add(c.category);
    assert.deepEqual(tok.encode(c.text), c.ids, `${c.category}: ${JSON.stringify(c.text.slice(0, 80))}`);
    assert.equal(tok.decode(c.ids), c.text);
    assert.equal(streamDecode(tok, c.ids), c.text);
  }
  for (const k of ['english', 'contractions', 'numbers', 'whitespace', 'whitespace_class', 'specials', 'multilingual', 'emoji', 'code', 'long', 'random'])
    assert.ok(categories.has(k), `no ${k} cases`);
});

test('every golden decode case equals Python\'s bytes.decode(\'utf-8\', \'replace\'), one call or streamed', () => {
  assert.equal(golden.decode.length, 136);
  for (const c of golden.decode) {
    assert.equal(tok.decode(c.ids), c.text, `${c.category}: ${JSON.stringify(c.ids)}`);
    assert.equal(streamDecode(tok, c.ids), c.text, `stream ${c.category}: ${JSON.stringify(c.ids)}`);
  }
});

test('the CLI gives every golden case byte-exact: grok tokenize/detokenize --tokenizer tokenizer.tok.json --jsonl', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tok-g2-'));
  try {
    const texts = path.join(dir, 'texts.jsonl');
    writeFileSync(texts, golden.encode.map((c) => JSON.stringify(c.text)).join('\n') + '\n');
    let r = await grok('tokenize', '--tokenizer', TOK, '--jsonl', texts);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, golden.encode.length);
    lines.forEach((l, i) => assert.deepEqual(JSON.parse(l), golden.encode[i].ids, JSON.stringify(golden.encode[i].text.slice(0, 80))));

    const ids = path.join(dir, 'ids.jsonl');
    writeFileSync(ids, golden.decode.map((c) => JSON.stringify(c.ids)).join('\n') + '\n');
    r = await grok('detokenize', '--tokenizer', TOK, '--jsonl', ids);
    assert.equal(r.code, 0, r.err);
    const texts2 = r.out.split('\n');
    assert.equal(texts2.pop(), '');
    assert.equal(texts2.length, golden.decode.length);
    texts2.forEach((l, i) => assert.equal(JSON.parse(l), golden.decode[i].text, JSON.stringify(golden.decode[i].ids)));

    // single texts and ids, pieces, and --eos (<|eos|> from the file); no BOS in Grok-2
    r = await grok('tokenize', '--tokenizer', TOK, "Hello<|separator|>\n\nDON'T");
    assert.equal(r.out, `${JSON.stringify(tok.encode("Hello<|separator|>\n\nDON'T"))}\n`);
    assert.deepEqual(JSON.parse(r.out).slice(0, 3), [9906, 100257, 271]);
    r = await grok('tokenize', '--tokenizer', TOK, '--pieces', 'Hi there');
    assert.equal(r.out, '["Hi"," there"]\n');
    r = await grok('tokenize', '--tokenizer', TOK, '--eos', 'Hi');
    assert.equal(r.out, `[${tok.encode('Hi')[0]},100258]\n`);
    r = await grok('tokenize', '--tokenizer', TOK, '--bos', 'Hi');
    assert.deepEqual([r.code, r.err], [2, `grok: ${TOK} has no BOS token: drop --bos\n`]);
    r = await grok('detokenize', '--tokenizer', TOK, '--json', '9906,100257,271');
    assert.equal(r.out, '"Hello<|separator|>\\n\\n"\n');
    r = await grok('detokenize', '--tokenizer', TOK, '101088');
    assert.equal(r.code, 1);
    assert.match(r.err, /^grok: .*token id 101088 at position 0 is out of range \(vocabulary size 101088\)\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the model fixtures\' tokenizer: specials first (0..15), prompts encode to the fixtures\' tokens', () => {
  const t = TiktokenTokenizer.fromFile(TINY);
  assert.equal(t.vocabSize, 512);
  assert.deepEqual([t.padId, t.eosId, t.specialId('<|separator|>'), t.specialId('<|control8|>')], [0, 2, 1, 15]);
  // golden.json of g2-tiny-a and g2-tiny-b (prompt_text → tokens)
  assert.deepEqual(t.encode('Human: What is your name? Answer in one short line.<|separator|>\n\nAssistant:'),
    [496, 74, 442, 312, 444, 385, 79, 463, 126, 131, 135, 274, 307, 467, 117, 411, 290, 132, 440, 292, 117, 62, 1, 296, 493, 74]);
  assert.deepEqual(t.encode('System: You are Grok, a helpful assistant built by xAI.<|separator|>\n\nHuman: Write one line of Python that sums 1 to 10.<|separator|>\n\nAssistant:'),
    [497, 74, 465, 329, 436, 60, 272, 479, 471, 474, 330, 485, 62, 1, 296, 496, 74, 360, 320, 306, 467, 117, 440, 292, 117, 364, 48, 96, 137, 132, 120, 279, 273, 422, 280, 333, 131, 48, 65, 416, 48, 65, 64, 62, 1, 296, 493, 74]);
  for (let id = 0; id < 16; id++) {
    const text = t.idToPiece(id);
    assert.ok(t.isSpecial(id));
    assert.deepEqual(t.encode(`x${text}y`), [...t.encode('x'), id, ...t.encode('y')], text);
  }
  assert.deepEqual(t.encode('\u0000'), [16]); // byte tokens start at 16
  const r = mulberry32(7);
  const alphabet = ['a', 'Z', ' ', '\n', '1', '.', "'s", 'é', '日', '😀', '<|eos|>', '<|control3|>', '<|pad', '\u0085', '\ufeff'];
  for (let k = 0; k < 200; k++) {
    let s = '';
    for (let n = Math.floor(r() * 30); n > 0; n--) s += alphabet[Math.floor(r() * alphabet.length)];
    const ids = t.encode(s);
    assert.equal(t.decode(ids), s);
    assert.equal(streamDecode(t, ids), s);
  }
});

test('loadTokenizerFile tells a tok.json from a SentencePiece model by content', () => {
  const a = loadTokenizerFile(TINY);
  assert.ok(a instanceof TiktokenTokenizer);
  assert.equal(a.vocabSize, 512);
  const b = loadTokenizerFile(TOKENIZER_MODEL);
  assert.ok(b instanceof Tokenizer);
  assert.equal(b.vocabSize, 131072);
});

test('V1 pattern: Rust regex semantics that JavaScript\'s \\s and case rules would get wrong', () => {
  const cases: [string, string[]][] = [
    // U+0085 is White_Space in Rust (not in JavaScript): a run of two backs off one before the letter
    ['x\u0085\u0085y', ['x', '\u0085', '\u0085y']],
    ['a\u0085', ['a', '\u0085']],
    ['\u0085\n', ['\u0085\n']],
    // U+FEFF is not White_Space in Rust (it is in JavaScript): punctuation-like
    ['a\ufeff\ufeffb', ['a', '\ufeff\ufeff', 'b']],
    ['a \ufeff', ['a', ' \ufeff']],
    ['\ufeff\n\n', ['\ufeff\n\n']],
    // NBSP and other Unicode spaces are White_Space in both
    ['a\u00a0\u00a0b', ['a', '\u00a0', '\u00a0b']],
    ['a\u3000\u2028 b', ['a', '\u3000\u2028', ' b']],
    // (?i:…) with simple case folding: ſ (U+017F) folds to s
    ["he'ſ", ['he', "'ſ"]],
    ["'ſſ", ["'ſ", 'ſ']],
    ["'ſt", ["'ſ", 't']],
    ["DON'T", ['DON', "'T"]],
    ["DON'TS", ['DON', "'T", 'S']],
    ["I'LL WE'RE YOU'VE I'M HE'D", ['I', "'LL", ' WE', "'RE", ' YOU', "'VE", ' I', "'M", ' HE', "'D"]],
    ["we'Re", ['we', "'Re"]],
    ["'x'", ["'x", "'"]],
    ["'\u212a", ["'\u212a"]], // Kelvin sign folds to k, which no contraction uses
    // \r\n runs: \s*[\r\n]+ ends at the last CR/LF of a whitespace run
    ['a\r\n\r\n  b', ['a', '\r\n\r\n', ' ', ' b']],
    ['a\r\n', ['a', '\r\n']],
    ['  \n  ', ['  \n', '  ']],
    [' \t\r\n\t x', [' \t\r\n', '\t', ' x']],
    ['!!\r\n\r\nx', ['!!\r\n\r\n', 'x']],
    // digits one by one (any \p{N})
    ['12345', ['1', '2', '3', '4', '5']],
    ['x2024y', ['x', '2', '0', '2', '4', 'y']],
    ['\u0661\u0662\u00bd\u2167', ['\u0661', '\u0662', '\u00bd', '\u2167']],
    ['\u{1d7ce}\u{1d7cf}', ['\u{1d7ce}', '\u{1d7cf}']],
    // whitespace before a non-space: \s+(?!\S) leaves the last one to the next piece
    ['a   b', ['a', '  ', ' b']],
    ['a   !', ['a', '  ', ' !']],
    ['a   1', ['a', '  ', ' ', '1']], // the space left over is alone: ' ?' takes only non-space symbols
    ['a\t\tb', ['a', '\t', '\tb']],
    ['a   ', ['a', '   ']],
    [' ', [' ']],
    ['  !!!\n\n', [' ', ' !!!\n\n']],
    // [^\r\n\p{L}\p{N}]?\p{L}+ takes one leading non-letter, not CR/LF, not a digit
    ['.hello', ['.hello']],
    ['\nhello', ['\n', 'hello']],
    ['1hello', ['1', 'hello']],
    ['$$x', ['$$', 'x']],
    ['caf\u00e9 na\u0308ive', ['caf\u00e9', ' na', '\u0308ive']], // a combining mark is not \p{L}
    ['\u{1d400}\u{1d401} \u{1f600}!', ['\u{1d400}\u{1d401}', ' \u{1f600}!']],
    ['', []],
  ];
  const re = patternToRegExp(V1_PATTERN);
  for (const [text, want] of cases) {
    assert.deepEqual(splitV1(text), want, JSON.stringify(text));
    assert.deepEqual(splitRegExp(re, text), want, `RegExp translation: ${JSON.stringify(text)}`);
  }
  // The naive JavaScript reading of the pattern differs exactly on those characters.
  const naive = new RegExp(V1_PATTERN.replace("(?i:'s|'t|'re|'ve|'m|'ll|'d)", "'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])"), 'gu');
  assert.deepEqual(splitRegExp(naive, 'x\u0085\u0085y'), ['x', '\u0085\u0085', 'y']);
  assert.deepEqual(splitRegExp(naive, 'a\ufeff\ufeffb'), ['a', '\ufeff', '\ufeffb']);
  assert.deepEqual(splitRegExp(naive, "'ſſ"), ["'ſſ"]);
});

test('V1 scanner equals the RegExp translation of the pattern on random text', () => {
  const re = patternToRegExp(V1_PATTERN);
  const alphabet = [
    'a', 'Z', 'k', 's', 'S', 't', 'r', 'e', 'l', 'L', 'd', 'v', 'm', '\u017f', '\u212a', "'", "'", '"', '0', '7', '\u0661', '\u00bd',
    ' ', ' ', '  ', '\t', '\n', '\r', '\r\n', '\u000b', '\u000c', '\u0085', '\u00a0', '\u1680', '\u2000', '\u200a', '\u2028', '\u2029',
    '\u202f', '\u205f', '\u3000', '\ufeff', '\u180e', '\u200b', '.', '!', '-', '_', '(', '\u0301', '\u00e9', '\u65e5', '\u0627', '\u0e01',
    '\u{1f600}', '\u{1d400}', '\u{1d7ce}', '\u{20000}', '\u{e0001}', '\u0000', '\u007f',
  ];
  const r = mulberry32(2024);
  for (let k = 0; k < 3000; k++) {
    let s = '';
    for (let n = 1 + Math.floor(r() * 24); n > 0; n--) s += alphabet[Math.floor(r() * alphabet.length)];
    const want = splitRegExp(re, s);
    assert.equal(want.join(''), s, 'the pattern covers every character');
    assert.deepEqual(splitV1(s), want, JSON.stringify(s));
  }
});

test('simple case folding in this engine: only ſ and K fold to the letters of the contractions', () => {
  // JavaScript's /iu uses Unicode simple case folding, as Rust's (?i); the scanner hard-codes its result.
  const all: string[] = [];
  for (let cp = 0x80; cp < 0x30000; cp++) if (cp < 0xd800 || cp >= 0xe000) all.push(String.fromCodePoint(cp));
  const found = splitRegExp(/[a-z]/giu, all.join(''));
  assert.deepEqual(found, ['\u017f', '\u212a']);
});

test('heap merge equals tiktoken\'s quadratic merge; long runs stay fast', () => {
  const quad = TiktokenTokenizer.fromFile(TOK, { heapFrom: Infinity });
  const heap = TiktokenTokenizer.fromFile(TOK, { heapFrom: 2 });
  for (const c of golden.encode) assert.deepEqual(heap.encode(c.text), c.ids, JSON.stringify(c.text.slice(0, 80)));
  const r = mulberry32(99);
  const chars = ['a', 'b', 'ab', 'e', 'th', ' ', '=', '-', '*', '\u00e9', '\u65e5', '\u{1f600}'];
  for (let k = 0; k < 300; k++) {
    // one long piece: a letter run, a space run or a symbol run
    const kind = k % 3;
    let s = kind === 1 ? ' ' : '';
    for (let n = 20 + Math.floor(r() * 400); n > 0; n--) {
      const c = chars[Math.floor(r() * chars.length)];
      s += kind === 0 ? (/\p{L}/u.test(c) ? c : 'q') : kind === 1 ? ' ' : (/[=\-*]/.test(c) ? c : '#');
    }
    assert.deepEqual(heap.encode(s), quad.encode(s), JSON.stringify(s.slice(0, 60)));
  }
  const t0 = performance.now();
  for (const s of [' '.repeat(200000), 'a'.repeat(200000), '='.repeat(200000), 'ab'.repeat(100000), '\u{1f600}'.repeat(50000)]) {
    const ids = tok.encode(s);
    assert.equal(tok.decode(ids), s);
  }
  assert.ok(performance.now() - t0 < 20000, 'long pieces are not quadratic');
});

test('specials: SGLang\'s allowed set by default; others are text; encode_ordinary; bytes and lone surrogates', () => {
  assert.ok(sglangAllowsSpecial('<|reserved_3|>') && sglangAllowsSpecial('<|reserved_127|>') && sglangAllowsSpecial('<|control704|>'));
  assert.ok(!sglangAllowsSpecial('<|reserved_2|>') && !sglangAllowsSpecial('<|control705|>') && !sglangAllowsSpecial('<|control01|>') && !sglangAllowsSpecial('<|endoftext|>'));
  // text that only looks special
  for (const s of ['<|endoftext|>', '<|control705|>', '<|EOS|>', '<|eos', '<|eos|'])
    assert.ok(!tok.encode(s).some((id) => tok.isSpecial(id)), s);
  // adjacent and leftmost specials; the text between them is split on its own
  const sep = 100257, eos = 100258;
  assert.deepEqual(tok.encode('<|eos|><|separator|>'), [eos, sep]);
  assert.deepEqual(tok.encode('a <|eos|> b'), [...tok.encode('a '), eos, ...tok.encode(' b')]);
  assert.deepEqual(tok.encode('<|<|eos|>|>'), [...tok.encode('<|'), eos, ...tok.encode('|>')]);
  assert.ok(!tok.encode('x<|eos|>', { specials: false }).includes(eos));
  // a special outside SGLang's set is text unless all are allowed
  const spec = tinySpec();
  spec.special_tokens.push({ token: 262, bytes: [...Buffer.from('<|endoftext|>')] });
  spec.vocab_size = 263;
  const t1 = TiktokenTokenizer.fromJson(spec, 'spec');
  assert.ok(!t1.encode('<|endoftext|>').includes(262));
  assert.deepEqual(t1.encode('a<|eos|>'), [97, 258]);
  assert.deepEqual(TiktokenTokenizer.fromJson(spec, 'spec', { allowedSpecial: 'all' }).encode('a<|endoftext|>'), [97, 262]);
  assert.ok(!TiktokenTokenizer.fromJson(spec, 'spec', { allowedSpecial: 'none' }).encode('<|eos|>').includes(258));
  // lone surrogates read as U+FFFD; raw bytes with replacement
  assert.deepEqual(tok.encode('a\ud800b'), tok.encode('a\ufffdb'));
  assert.deepEqual(tok.encode(Uint8Array.from([0x61, 0xff, 0x62])), tok.encode('a\ufffdb'));
  assert.deepEqual(tok.encode(Uint8Array.from(Buffer.from('h\u00e9llo <|eos|>'))), tok.encode('h\u00e9llo <|eos|>'));
  // a leading BOM is text, in both directions
  assert.equal(tok.decode(tok.encode('\ufeffhi')), '\ufeffhi');
});

/** A small valid tok.json: the 256 bytes at 0..255, merges "ab" 256, "abc" 257, specials 258 <|eos|> … */
function tinySpec(): { regular_tokens: { token: number; bytes: number[] }[]; special_tokens: { token: number; bytes: number[] }[]; word_split: string; vocab_size: number; pat_str?: string } {
  const regular = Array.from({ length: 256 }, (_, b) => ({ token: b, bytes: [b] }));
  regular.push({ token: 256, bytes: [97, 98] }, { token: 257, bytes: [97, 98, 99] });
  for (const [i, s] of ['12', '123', '45'].entries()) regular.push({ token: 259 + i, bytes: [...Buffer.from(s)] });
  return { regular_tokens: regular, special_tokens: [{ token: 258, bytes: [...Buffer.from('<|eos|>')] }], word_split: 'V1', vocab_size: 262 };
}

test('pat_str overrides the V1 pattern (translated from Rust syntax); unsupported syntax is refused', () => {
  const v1 = TiktokenTokenizer.fromJson(tinySpec(), 'spec');
  assert.deepEqual(v1.encode('12345abc'), [49, 50, 51, 52, 53, 257]);
  const spec = tinySpec();
  spec.pat_str = V1_PATTERN.replace(String.raw`\p{N}|`, String.raw`\p{N}{1,3}|`);
  const t = TiktokenTokenizer.fromJson(spec, 'spec');
  assert.deepEqual(t.encode('12345abc'), [260, 261, 257]);
  assert.deepEqual(t.encode("x\u0085\u0085y DON'T"), v1.encode("x\u0085\u0085y DON'T"));
  const same = tinySpec();
  same.pat_str = V1_PATTERN;
  assert.equal(TiktokenTokenizer.fromJson(same, 'spec').pattern, V1_PATTERN);
  // Rust's code point escapes
  assert.deepEqual(splitRegExp(patternToRegExp(String.raw`[\x41\x{42}\u0043\u{44}\U00000045\U{1F600}]+|.`), 'ABCDE\u{1f600}x'), ['ABCDE\u{1f600}', 'x']);
  assert.deepEqual(splitRegExp(patternToRegExp(String.raw`(?i:\x41b)`), 'aBAbab'), ['aB', 'Ab', 'ab']);
  for (const [pat, why] of [
    [String.raw`\x{110000}`, /escape \\x\{110000\} is not a Unicode scalar value/],
    [String.raw`\xZ`, /malformed escape \\x/],
    [String.raw`[^\r\n\p{L}\p{N}]?+\p{L}+`, /possessive quantifiers are not supported/],
    ["(?i:[sdmt]|ll)", /a letter inside a character class under \(\?i:…\) is not supported/],
    ['(?x) a', /group "\(\?x\) a"… is not supported/],
    ['(?i:é)', /non-ASCII letter "é" under \(\?i:…\) is not supported/],
    ['[^\\S]', /\\S inside a character class is not supported/],
    ['(a', /unclosed group/],
  ] as const) {
    const s = tinySpec();
    s.pat_str = pat;
    assert.throws(() => TiktokenTokenizer.fromJson(s, 'spec.tok.json'), (e: unknown) => e instanceof FormatError && /^spec\.tok\.json: pat_str cannot be used: /.test(e.message) && why.test(e.message), pat);
  }
});

test('malformed tok.json files give a FormatError naming the file and the field', async () => {
  const bad: [string, (s: ReturnType<typeof tinySpec>) => unknown, RegExp][] = [
    ['not an object', () => [1, 2], /expected a JSON object with regular_tokens, special_tokens and word_split, got an array/],
    ['no regular_tokens', (s) => ({ ...s, regular_tokens: undefined }), /regular_tokens is missing, expected an array/],
    ['word_split', (s) => ({ ...s, word_split: 'V2' }), /word_split is "V2"; only "V1" is known/],
    ['no word_split', (s) => ({ ...s, word_split: undefined }), /word_split is missing; only "V1" is known/],
    ['id too large', (s) => { s.regular_tokens[257].token = 262; return s; }, /regular_tokens\[257\]\.token is number 262, expected an id in 0\.\.261 \(vocab_size 262\)/],
    ['negative id', (s) => { s.special_tokens[0].token = -1; return s; }, /special_tokens\[0\]\.token is number -1, expected an id in 0\.\.261/],
    ['id not an integer', (s) => { (s.regular_tokens[3] as { token: unknown }).token = '3'; return s; }, /regular_tokens\[3\]\.token is "3", expected an id/],
    ['duplicate id', (s) => { s.special_tokens[0].token = 257; return s; }, /token id 257 is used twice: regular_tokens\[257\] and special_tokens\[0\]/],
    ['bad byte', (s) => { s.regular_tokens[256].bytes = [97, 256]; return s; }, /regular_tokens\[256\]\.bytes\[1\] is number 256, not a byte \(0\.\.255\)/],
    ['fractional byte', (s) => { s.regular_tokens[256].bytes = [97.5]; return s; }, /regular_tokens\[256\]\.bytes\[0\] is number 97\.5, not a byte/],
    ['empty bytes', (s) => { s.regular_tokens[256].bytes = []; return s; }, /regular_tokens\[256\]\.bytes is an array, expected a non-empty array of bytes/],
    ['entry not an object', (s) => { (s.regular_tokens as unknown[])[5] = 5; return s; }, /regular_tokens\[5\] is number 5, expected \{"token": id, "bytes": \[\.\.\.\]\}/],
    ['duplicate bytes', (s) => { s.regular_tokens[257].bytes = [97, 98]; return s; }, /regular_tokens\[257\] \(id 257\) has the same bytes as regular_tokens\[256\] \(id 256\)/],
    ['missing byte', (s) => { s.regular_tokens[65].bytes = [65, 65]; return s; }, /regular_tokens has no token for the single byte 65 \(0x41\); byte-level BPE needs all 256/],
    ['gap', (s) => ({ ...s, vocab_size: 263 }), /vocab_size is 263 but the file has 262 tokens \(id 262 is missing\)/],
    ['vocab_size type', (s) => ({ ...s, vocab_size: '262' }), /vocab_size is "262", expected an integer ≥ 256/],
    ['special not UTF-8', (s) => { s.special_tokens[0].bytes = [0xff]; return s; }, /special_tokens\[0\] \(id 258\) is not valid UTF-8/],
    ['duplicate special', (s) => { s.special_tokens.push({ token: 262, bytes: [...Buffer.from('<|eos|>')] }); s.vocab_size = 263; return s; }, /special_tokens\[1\] "<\|eos\|>" \(id 262\) repeats id 258/],
    ['pat_str type', (s) => ({ ...s, pat_str: 3 }), /pat_str is number 3, expected a string/],
  ];
  for (const [name, mutate, want] of bad) {
    const json = mutate(tinySpec());
    assert.throws(() => TiktokenTokenizer.fromJson(json, 'bad.tok.json'), (e: unknown) => e instanceof FormatError && e.message.startsWith('bad.tok.json: ') && want.test(e.message), name);
  }
  assert.throws(() => TiktokenTokenizer.fromBytes(Buffer.from('{"regular_tokens": [1,'), 'bad.tok.json'), /^FormatError: bad\.tok\.json: not valid JSON/);
  // through the CLI: one line, exit code 1
  const dir = mkdtempSync(path.join(tmpdir(), 'tok-g2-bad-'));
  try {
    const file = path.join(dir, 'tokenizer.tok.json');
    const s = tinySpec();
    s.word_split = 'V7';
    writeFileSync(file, JSON.stringify(s));
    const r = await grok('tokenize', '--tokenizer', file, 'x');
    assert.deepEqual([r.code, r.err], [1, `grok: ${file}: word_split is "V7"; only "V1" is known\n`]);
    writeFileSync(file, JSON.stringify(tinySpec()));
    const ok = await grok('tokenize', '--tokenizer', file, 'abc 12<|eos|>');
    assert.deepEqual([ok.code, ok.out], [0, '[257,32,49,50,258]\n']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mutated tok.json files load or fail with a FormatError, never another error or a huge allocation', () => {
  const base = Buffer.from(JSON.stringify(tinySpec()));
  const r = mulberry32(5);
  const digits = Buffer.from('0123456789');
  let loaded = 0;
  for (let k = 0; k < 400; k++) {
    const b = Buffer.from(base);
    for (let m = 1 + Math.floor(r() * 3); m > 0; m--) {
      const at = Math.floor(r() * b.length);
      // mostly digits into digits, so that many mutants stay JSON and reach the field checks
      b[at] = digits.includes(b[at]) && r() < 0.8 ? digits[Math.floor(r() * 10)] : Math.floor(r() * 256);
    }
    const cut = r() < 0.1 ? Math.floor(r() * b.length) : b.length;
    try {
      const t = TiktokenTokenizer.fromBytes(b.subarray(0, cut), 'm.tok.json');
      assert.equal(t.decode(t.encode('abc 12<|eos|> x')), 'abc 12<|eos|> x');
      loaded++;
    } catch (e) {
      assert.ok(e instanceof FormatError && e.message.startsWith('m.tok.json: '), `mutant ${k}: ${(e as Error).stack}`);
    }
  }
  assert.ok(loaded > 0);
  const huge = { ...tinySpec(), vocab_size: 2 ** 40 };
  assert.throws(() => TiktokenTokenizer.fromJson(huge, 'h'), /^FormatError: h: vocab_size is 1099511627776 but the file has 262 tokens \(id 262 is missing\)$/);
});
