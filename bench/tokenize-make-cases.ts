// Writes test/tokenizer-sp-cases.json: extra encode/decode cases answered by SentencePiece itself
// (python3-sentencepiece), so that `npm test` covers other languages, code, whitespace runs, emoji, control
// characters, malformed UTF-8 and long documents without needing SentencePiece in CI.
//   npx tsc -p . && node dist/bench/tokenize-make-cases.js
// Our tokenizer is not consulted: every expected value comes from SentencePiece.

import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readModelProto, PieceType } from '../src/tokenizer/protobuf.js';
import { EMOJI, piecesByScript, randomBytes, randomIds, randomText, rng } from './tokenize-corpus.js';
import { checkPython, spBatch, spVersion, type SpRequest } from './tokenize-sp.js';
import { TOKENIZER_MODEL } from '../test/fixtures.js';

const MODEL = TOKENIZER_MODEL;
const OUT = path.resolve('test/tokenizer-sp-cases.json');
checkPython();

const model = readModelProto(readFileSync(MODEL), MODEL);
const pieces = model.pieces.map((p) => p.piece);
const byScript = piecesByScript(pieces);
const vocabText = model.pieces.filter((p) => p.type === PieceType.NORMAL).map((p) => p.piece.replaceAll('\u2581', ' '));
const r = rng(2026);

const SENTENCES = [
  'Die Würde des Menschen ist unantastbar. Sie zu achten und zu schützen ist Verpflichtung aller staatlichen Gewalt.',
  'Le cœur a ses raisons que la raison ne connaît point ; c’est l’été à Besançon.',
  'Съешь же ещё этих мягких французских булок, да выпей чаю.',
  'الكتابة العربية تُكتب من اليمين إلى اليسار، وهذا اختبار للمُرمِّز.',
  'हिन्दी भारत की राजभाषा है और देवनागरी लिपि में लिखी जाती है।',
  'ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ ซึ่งทำให้การตัดคำยาก',
  '我们在测试分词器：中文没有空格，标点符号是全角的。',
  '吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。',
  '다람쥐 헌 쳇바퀴에 타고파. 한국어 문장은 띄어쓰기를 합니다.',
  'Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.',
  'עברית נכתבת מימין לשמאל, עם ניקוד אופציונלי.',
  'Tiếng Việt có nhiều dấu thanh: à á ả ã ạ, ư ơ đ.',
  'Pijamalı hasta yağız şoföre çabucak güvendi; İstanbul’da ılık bir gün.',
  'Zażółć gęślą jaźń. Příliš žluťoučký kůň úpěl ďábelské ódy.',
  'Ꭰ Ꭱ Ꭲ Ᏹ — Cherokee, ᚠᚢᚦᚨᚱᚲ runes, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math, 𓀀 hieroglyphs.',
  'def f(x):\n\tif x > 0:\n\t\treturn x ** 2  # square\n\treturn -x\n',
  'for (let i = 0; i < n; i++) {\n    sum += a[i] * b[i];\n}\n',
  '<div class="a">\r\n  <p>Hello&nbsp;world</p>\r\n</div>',
  'SELECT id, name FROM users WHERE age >= 21 ORDER BY name;',
  '{"key": [1, 2.5, -3e10, null, true], "nested": {"a": "b"}}',
  '$ ls -la /usr/lib | grep python3 && echo "done" > /tmp/x.log 2>&1',
  'Version 3.14.159-rc2 released on 2024-02-29T12:34:56Z (+0.5%).',
  '    four spaces\n        eight spaces\n                sixteen spaces\n                                 thirty-three',
  '\t\t\t\t\t\t\t\t\t\tten tabs then text',
  '\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\nmany newlines',
  ' \u00a0\u2002\u2003\u2009\u200a\u202f\u205f\u3000 assorted spaces',
  '\u0001\u0002\u0003\u001b[31mred\u001b[0m\u0007\u0008\u007f\u0085',
  'zero\u200bwidth\u200cjoiner\u200dtest\u2060\ufeff',
  'e\u0301 a\u0308 n\u0303 combining vs é ä ñ precomposed',
  EMOJI.join(' '),
  '👩🏽‍🚀👨‍👨‍👧‍👦🏴󠁧󠁢󠁳󠁣󠁴󠁿🇺🇳 keycaps 1️⃣#️⃣ and ✍🏾',
  '<|separator|><|mask|><|control1|><|control20|><|control21|><|control|>[BOS][EOS][UNK]<s></s>',
  '\u2581already\u2581escaped \u2581 \u2581\u2581 ▁▁▁',
  '\uFFFD replacement \uE000 private use \u{10FFFD} plane 16',
];

const reqs: SpRequest[] = [];
const kinds: string[] = [];
const add = (kind: string, q: SpRequest): void => {
  kinds.push(kind);
  reqs.push(q);
};
for (const s of SENTENCES) add('sentence', { t: s });
for (let i = 0; i < 60; i++) add('random', { t: randomText(r, byScript, vocabText) });
for (let i = 0; i < 20; i++) add('bytes', { b: Buffer.from(randomBytes(r, byScript, vocabText)).toString('base64') });
const excerpts = [
  '/usr/share/common-licenses/Apache-2.0',
  '/usr/share/common-licenses/GPL-3',
  '/usr/lib/python3.11/json/encoder.py',
  '/usr/lib/python3.11/textwrap.py',
];
for (const f of excerpts) {
  try {
    add('document', { t: readFileSync(f, 'utf8').slice(0, 6000) });
  } catch {
    // a file missing on this machine is simply not a case
  }
}
for (const u of ['a', ' ', '\u3000', '日本', '🙂', 'ab ', '.\n']) add('run', { t: u.repeat(Math.ceil(3000 / u.length)) });
const byteIds = model.pieces.map((p, i) => (p.type === PieceType.BYTE ? i : -1)).filter((i) => i >= 0);
const special = [0, 1, 2, 3, 4, 13, 14, 24, 32, 46, 47, 68, 325, 130089, 1990, 336];
for (let i = 0; i < 60; i++) add('decode', { d: randomIds(r, pieces.length, byteIds, special) });

const answers = spBatch(MODEL, reqs);
const cases = reqs.map((q, i) => ({ kind: kinds[i], ...q, expected: answers[i] }));
writeFileSync(OUT, JSON.stringify({ generator: `sentencepiece ${spVersion()} (Python), encode / decode with default options, bench/tokenize-make-cases.ts`, tokenizer: 'grok-1-tokenizer.model', cases }, null, 0) + '\n');
console.log(`wrote ${cases.length} cases to ${OUT}`);
