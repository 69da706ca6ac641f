/**
 * Fuzz targets: one per parser of untrusted files. Each takes seed files from the repository (the
 * fixtures, the default model's tokenizer), mutates them deterministically from (seed, index), and runs the
 * reader and the binder on the result. What counts as clean: the parse succeeds, or throws a FormatError /
 * ConfigError. Anything else — TypeError, RangeError, EISDIR, a crash, a hang, a heap blow-up — is a defect.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, FormatError } from '../../src/base/errors.js';
import { readCheckpointTensor } from '../../src/formats/pickle.js';
import { openGguf } from '../../src/formats/gguf.js';
import { openSafetensors } from '../../src/formats/safetensors.js';
import { bindGguf } from '../../src/model/map-gguf.js';
import { bindHf } from '../../src/model/map-hf.js';
import { Tokenizer } from '../../src/tokenizer/sentencepiece.js';
import { DATA, fixtureDir } from '../fixtures.js';
import { mulberry32 } from '../random.js';

export const TARGETS = ['pickle', 'gguf', 'safetensors', 'sentencepiece'] as const;
/** 'canary' misbehaves on purpose (test/fuzz.test.ts proves the harness counts each kind of defect). */
export type TargetName = (typeof TARGETS)[number] | 'canary';

/** Input i of seed s is always the same bytes: a mulberry32 stream seeded from both. */
export function rngFor(seed: number, index: number): () => number {
  return mulberry32((Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35)) >>> 0);
}

const INTERESTING_U64 = [0n, 1n, 2n, 7n, 8n, 31n, 32n, 255n, 256n, 2n ** 16n, 2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 60n, 2n ** 63n, 2n ** 64n - 1n];
const INTERESTING_U8 = [0, 1, 0x7f, 0x80, 0xff, 0x28, 0x29, 0x5b, 0x5d, 0x7b, 0x7d, 0x22, 0x2e];

/** Mutate `src` (a copy is returned): 1–6 edits; `focus` bytes at the start are edited most often. */
export function mutate(src: Buffer, r: () => number, focus: number): Buffer {
  let b = Buffer.from(src);
  const pos = (len: number) => (r() < 0.8 ? Math.floor(r() * Math.min(focus, len)) : Math.floor(r() * len));
  const edits = 1 + Math.floor(r() * 6);
  for (let e = 0; e < edits && b.length > 0; e++) {
    const op = Math.floor(r() * 9);
    const p = pos(b.length);
    if (op === 0) b[p] = b[p]! ^ (1 << Math.floor(r() * 8));
    else if (op === 1) b[p] = INTERESTING_U8[Math.floor(r() * INTERESTING_U8.length)]!;
    else if (op === 2) b[p] = Math.floor(r() * 256);
    else if (op === 3 && p + 8 <= b.length) b.writeBigUInt64LE(INTERESTING_U64[Math.floor(r() * INTERESTING_U64.length)]!, p);
    else if (op === 4 && p + 4 <= b.length) b.writeUInt32LE(Number(INTERESTING_U64[Math.floor(r() * 12)]! & 0xffffffffn), p);
    else if (op === 5) { // insert
      const n = 1 + Math.floor(r() * 16);
      b = Buffer.concat([b.subarray(0, p), Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256))), b.subarray(p)]);
    } else if (op === 6) b = Buffer.concat([b.subarray(0, p), b.subarray(Math.min(b.length, p + 1 + Math.floor(r() * 16)))]); // delete
    else if (op === 7) { // duplicate a run
      const n = 1 + Math.floor(r() * 64);
      b = Buffer.concat([b.subarray(0, p), b.subarray(p, p + n), b.subarray(p)]);
    } else if (op === 8 && r() < 0.3) b = b.subarray(0, p); // truncate
  }
  return b;
}

export interface Target {
  readonly name: TargetName;
  /** Run input `index` of `seed`: returns normally or throws what the parser threw. */
  run(seed: number, index: number): void;
  close(): void;
}

/**
 * A file whose first `header` bytes are rewritten in place for each input and restored afterwards, so a
 * mutated 15 MB model costs one small write per input (the readers never look at the tensor data).
 */
class InPlaceFile {
  private readonly fd: number;
  private size: number;
  constructor(readonly file: string, private readonly orig: Buffer, private readonly header: number) {
    fs.writeFileSync(file, orig);
    this.fd = fs.openSync(file, 'r+');
    this.size = orig.length;
  }
  /** Put `head` where the original header was; a shorter or longer head shifts nothing else. */
  write(head: Buffer, truncateTo?: number): void {
    fs.writeSync(this.fd, head, 0, head.length, 0);
    if (truncateTo !== undefined) { fs.ftruncateSync(this.fd, truncateTo); this.size = truncateTo; }
  }
  restore(written: number): void {
    if (this.size !== this.orig.length) {
      fs.writeSync(this.fd, this.orig, 0, this.orig.length, 0);
      this.size = this.orig.length;
    } else fs.writeSync(this.fd, this.orig, 0, Math.max(written, this.header), 0);
  }
  close(): void { fs.closeSync(this.fd); }
}

function headerTarget(name: 'gguf' | 'safetensors', dir: string): Target {
  const seedFile = name === 'gguf' ? path.join(fixtureDir('tiny-a'), 'model.gguf') : path.join(fixtureDir('tiny-b'), 'model.safetensors');
  const orig = fs.readFileSync(seedFile);
  const header = name === 'gguf' ? 13312 : 8 + Number(orig.readBigUInt64LE(0));
  const f = new InPlaceFile(path.join(dir, `fuzz.${name}`), orig, header);
  const golden = path.join(fixtureDir('tiny-b'), 'golden.json');
  return {
    name,
    run(seed, index) {
      const r = rngFor(seed, index);
      const head = mutate(orig.subarray(0, header), r, header);
      const truncate = r() < 0.05 ? Math.floor(r() * orig.length) : undefined;
      f.write(head, truncate);
      try {
        if (name === 'gguf') bindGguf(openGguf(f.file));
        else bindHf(openSafetensors(f.file), golden);
      } finally {
        f.restore(head.length);
      }
    },
    close: () => f.close(),
  };
}

function pickleTarget(dir: string): Target {
  const ckpt = path.join(fixtureDir('tiny-a'), 'ckpt-0');
  // The small tensor files whole (norms, routers, embeddings are plain arrays; 00002 is a QuantizedWeight8bit).
  const seeds = fs.readdirSync(ckpt).sort().map((f) => fs.readFileSync(path.join(ckpt, f))).filter((b) => b.length < 100_000);
  const file = path.join(dir, 'tensor00000_000');
  return {
    name: 'pickle',
    run(seed, index) {
      const r = rngFor(seed, index);
      const src = seeds[Math.floor(r() * seeds.length)]!;
      // Edits near either end: the opcodes live around the payload, the payload itself is only skipped.
      const flipped = r() < 0.5;
      const b = flipped ? Buffer.from(src).reverse() : src;
      let m = mutate(b, r, 600);
      if (flipped) m = Buffer.from(m).reverse();
      fs.writeFileSync(file, m);
      readCheckpointTensor(file);
    },
    close() {},
  };
}

function sentencepieceTarget(): Target {
  const orig = fs.readFileSync(path.join(DATA, '..', '..', 'models', 'default', 'tokenizer.model'));
  return {
    name: 'sentencepiece',
    run(seed, index) {
      const r = rngFor(seed, index);
      const t = Tokenizer.fromModelProto(mutate(orig, r, orig.length), 'fuzz.model');
      t.decode(t.encode('In the beginning God created the heaven and the earth. 1234 ✓'));
    },
    close() {},
  };
}

/** Input i: 0 mod 4 parses, 1 a FormatError, 2 a TypeError, 3 a ConfigError; #7 hangs, #13 exhausts the heap. */
function canaryTarget(): Target {
  return {
    name: 'canary',
    run(_seed, index) {
      if (index === 7) for (;;) { /* a parser stuck in a loop */ }
      if (index === 13) { const hog: number[][] = []; for (;;) hog.push(new Array<number>(1 << 16).fill(index)); }
      if (index % 4 === 1) throw new FormatError('canary', 'refused');
      if (index % 4 === 2) throw new TypeError('cannot read properties of undefined');
      if (index % 4 === 3) throw new ConfigError('canary', 'impossible');
    },
    close() {},
  };
}

export function makeTarget(name: TargetName, dir: string): Target {
  switch (name) {
    case 'canary': return canaryTarget();
    case 'pickle': return pickleTarget(dir);
    case 'gguf': case 'safetensors': return headerTarget(name, dir);
    case 'sentencepiece': return sentencepieceTarget();
  }
}
