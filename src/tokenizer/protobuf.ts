// SentencePiece `ModelProto` (tokenizer.model) wire-format reader and writer (Protocol Buffers encoding, sentencepiece_model.proto).
//
// Why our own and not protobufjs/google-protobuf: we need exactly three proto2 messages, must bound-check
// every varint/length of an untrusted file and name the offending field in the error (generic libraries
// throw "index out of range" without context), and must write the same bytes SentencePiece writes (field
// order, presence) so a file can round-trip byte-for-byte. That is ~300 lines, cheaper than a dependency.
//
// Data model: an optional field that is absent in the file is `undefined` here (not its default), so that
// writing reproduces presence exactly; defaults are applied by the consumer (see `trainerDefaults`).

import { FormatError } from '../base/errors.js';

/** SentencePiece piece types (ModelProto.SentencePiece.Type), also used by GGUF `tokenizer.ggml.token_type`. */
export const PieceType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** TrainerSpec.model_type values. */
export const ModelType = { UNIGRAM: 1, BPE: 2, WORD: 3, CHAR: 4 } as const;

export interface SentencePiece {
  piece: string;
  score: number;
  /** 1 NORMAL … 6 BYTE; written to the file only when it is not NORMAL (as SentencePiece does). */
  type: number;
}

/** A field we do not know, kept verbatim so that read → write preserves it. */
export interface UnknownField {
  field: number;
  wireType: number;
  /** the value's bytes as stored (varint bytes, fixed bytes, or the length-delimited payload) */
  data: Uint8Array;
}

export interface TrainerSpec {
  input?: string[];
  modelPrefix?: string;
  modelType?: number;
  vocabSize?: number;
  acceptLanguage?: string[];
  selfTestSampleSize?: number;
  inputFormat?: string;
  characterCoverage?: number;
  inputSentenceSize?: bigint;
  miningSentenceSize?: number;
  trainingSentenceSize?: number;
  seedSentencepieceSize?: number;
  shrinkingFactor?: number;
  numThreads?: number;
  numSubIterations?: number;
  maxSentenceLength?: number;
  shuffleInputSentence?: boolean;
  maxSentencepieceLength?: number;
  splitByUnicodeScript?: boolean;
  splitByWhitespace?: boolean;
  splitByNumber?: boolean;
  treatWhitespaceAsSuffix?: boolean;
  splitDigits?: boolean;
  allowWhitespaceOnlyPieces?: boolean;
  controlSymbols?: string[];
  userDefinedSymbols?: string[];
  vocabularyOutputPieceScore?: boolean;
  hardVocabLimit?: boolean;
  useAllVocab?: boolean;
  byteFallback?: boolean;
  requiredChars?: string;
  unkId?: number;
  bosId?: number;
  eosId?: number;
  padId?: number;
  unkSurface?: string;
  unkPiece?: string;
  bosPiece?: string;
  eosPiece?: string;
  padPiece?: string;
  trainExtremelyLargeCorpus?: boolean;
  enableDifferentialPrivacy?: boolean;
  differentialPrivacyNoiseLevel?: number;
  differentialPrivacyClippingThreshold?: bigint;
  pretokenizationDelimiter?: string;
  unknownFields?: UnknownField[];
}

export interface NormalizerSpec {
  name?: string;
  precompiledCharsmap?: Uint8Array;
  addDummyPrefix?: boolean;
  removeExtraWhitespaces?: boolean;
  escapeWhitespaces?: boolean;
  normalizationRuleTsv?: string;
  unknownFields?: UnknownField[];
}

export interface SelfTestSample {
  input?: string;
  expected?: string;
}

export interface ModelProto {
  pieces: SentencePiece[];
  trainerSpec?: TrainerSpec;
  normalizerSpec?: NormalizerSpec;
  selfTestData?: { samples: SelfTestSample[]; unknownFields?: UnknownField[] };
  denormalizerSpec?: NormalizerSpec;
  unknownFields?: UnknownField[];
}

/** proto2 defaults of the TrainerSpec fields that matter at run time (sentencepiece_model.proto). */
export const trainerDefaults = {
  modelType: ModelType.UNIGRAM,
  byteFallback: false,
  treatWhitespaceAsSuffix: false,
  unkId: 0,
  bosId: 1,
  eosId: 2,
  padId: -1,
  unkSurface: ' \u2047 ',
} as const;

export const normalizerDefaults = {
  addDummyPrefix: true,
  removeExtraWhitespaces: true,
  escapeWhitespaces: true,
} as const;

// ---------------------------------------------------------------------------------------------------
// Field tables. kind: how the value is encoded (and which wire type it must have).

type Kind = 'string' | 'strings' | 'bytes' | 'int32' | 'enum' | 'bool' | 'float' | 'uint64';
interface FieldDef {
  num: number;
  key: string; // property name in our objects
  name: string; // proto name, for error messages
  kind: Kind;
}

const WT_VARINT = 0;
const WT_I64 = 1;
const WT_LEN = 2;
const WT_I32 = 5;

function wireTypeOf(kind: Kind): number {
  switch (kind) {
    case 'string':
    case 'strings':
    case 'bytes':
      return WT_LEN;
    case 'float':
      return WT_I32;
    default:
      return WT_VARINT;
  }
}

function f(num: number, name: string, kind: Kind): FieldDef {
  const key = name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
  return { num, key, name, kind };
}

const TRAINER_FIELDS: FieldDef[] = [
  f(1, 'input', 'strings'),
  f(2, 'model_prefix', 'string'),
  f(3, 'model_type', 'enum'),
  f(4, 'vocab_size', 'int32'),
  f(5, 'accept_language', 'strings'),
  f(6, 'self_test_sample_size', 'int32'),
  f(7, 'input_format', 'string'),
  f(10, 'character_coverage', 'float'),
  f(11, 'input_sentence_size', 'uint64'),
  f(12, 'mining_sentence_size', 'int32'),
  f(13, 'training_sentence_size', 'int32'),
  f(14, 'seed_sentencepiece_size', 'int32'),
  f(15, 'shrinking_factor', 'float'),
  f(16, 'num_threads', 'int32'),
  f(17, 'num_sub_iterations', 'int32'),
  f(18, 'max_sentence_length', 'int32'),
  f(19, 'shuffle_input_sentence', 'bool'),
  f(20, 'max_sentencepiece_length', 'int32'),
  f(21, 'split_by_unicode_script', 'bool'),
  f(22, 'split_by_whitespace', 'bool'),
  f(23, 'split_by_number', 'bool'),
  f(24, 'treat_whitespace_as_suffix', 'bool'),
  f(25, 'split_digits', 'bool'),
  f(26, 'allow_whitespace_only_pieces', 'bool'),
  f(30, 'control_symbols', 'strings'),
  f(31, 'user_defined_symbols', 'strings'),
  f(32, 'vocabulary_output_piece_score', 'bool'),
  f(33, 'hard_vocab_limit', 'bool'),
  f(34, 'use_all_vocab', 'bool'),
  f(35, 'byte_fallback', 'bool'),
  f(36, 'required_chars', 'string'),
  f(40, 'unk_id', 'int32'),
  f(41, 'bos_id', 'int32'),
  f(42, 'eos_id', 'int32'),
  f(43, 'pad_id', 'int32'),
  f(44, 'unk_surface', 'string'),
  f(45, 'unk_piece', 'string'),
  f(46, 'bos_piece', 'string'),
  f(47, 'eos_piece', 'string'),
  f(48, 'pad_piece', 'string'),
  f(49, 'train_extremely_large_corpus', 'bool'),
  f(50, 'enable_differential_privacy', 'bool'),
  f(51, 'differential_privacy_noise_level', 'float'),
  f(52, 'differential_privacy_clipping_threshold', 'uint64'),
  f(53, 'pretokenization_delimiter', 'string'),
];

const NORMALIZER_FIELDS: FieldDef[] = [
  f(1, 'name', 'string'),
  f(2, 'precompiled_charsmap', 'bytes'),
  f(3, 'add_dummy_prefix', 'bool'),
  f(4, 'remove_extra_whitespaces', 'bool'),
  f(5, 'escape_whitespaces', 'bool'),
  f(6, 'normalization_rule_tsv', 'string'),
];

const SAMPLE_FIELDS: FieldDef[] = [f(1, 'input', 'string'), f(2, 'expected', 'string')];

function byNumber(defs: FieldDef[]): Map<number, FieldDef> {
  return new Map(defs.map((d) => [d.num, d]));
}
const TRAINER_BY_NUM = byNumber(TRAINER_FIELDS);
const NORMALIZER_BY_NUM = byNumber(NORMALIZER_FIELDS);
const SAMPLE_BY_NUM = byNumber(SAMPLE_FIELDS);

const WIRE_NAMES = ['varint', 'fixed64', 'length-delimited', 'group start', 'group end', 'fixed32', 'reserved 6', 'reserved 7'];

// ---------------------------------------------------------------------------------------------------
// Reader

// ignoreBOM: a piece may be U+FEFF itself; it must not be stripped as a byte-order mark.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class WireReader {
  pos: number;
  /** low and high 32 bits of the last varint read (unsigned) */
  lo = 0;
  hi = 0;
  /** replaces `#` in field names of errors (the piece index; names stay constant strings on the hot path) */
  index = 0;
  readonly text: Buffer;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    public end: number,
    readonly file: string,
  ) {
    this.pos = start;
    this.text = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  fail(what: string, message: string, at = this.pos): never {
    throw new FormatError(this.file, `${what.replace('[#]', `[${this.index}]`)}: ${message} (at byte offset ${at}; not a valid SentencePiece model file)`);
  }

  /** Reads a varint of at most 10 bytes into lo/hi; every byte is bound-checked. */
  varint(what: string): void {
    const buf = this.buf;
    const start = this.pos;
    let lo = 0;
    let hi = 0;
    for (let i = 0; ; i++) {
      if (this.pos >= this.end) this.fail(what, 'truncated varint (message ends inside it)', start);
      const b = buf[this.pos++];
      const v = b & 0x7f;
      if (i < 4) lo |= v << (7 * i);
      else if (i === 4) {
        lo |= (v & 0x0f) << 28;
        hi |= v >>> 4;
      } else if (i < 9) hi |= v << (7 * i - 32);
      else if (v > 1) this.fail(what, 'varint overflows 64 bits', start);
      else hi |= v << 31;
      if ((b & 0x80) === 0) break;
      if (i === 9) this.fail(what, 'varint longer than 10 bytes', start);
    }
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
  }

  /** A length prefix; it must fit in what is left of the enclosing message. */
  length(what: string): number {
    const at = this.pos;
    this.varint(what);
    const left = this.end - this.pos;
    if (this.hi !== 0 || this.lo > left) this.fail(what, `length ${this.hi !== 0 ? 'over 2^32' : this.lo} exceeds the ${left} bytes left in the enclosing message`, at);
    return this.lo;
  }

  fixed32(what: string): number {
    if (this.end - this.pos < 4) this.fail(what, `truncated fixed32 (need 4 bytes, ${this.end - this.pos} left)`);
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
  }

  /** Skips an unknown field's value (or captures it) by its wire type. */
  skip(what: string, wireType: number): Uint8Array {
    const start = this.pos;
    switch (wireType) {
      case WT_VARINT:
        this.varint(what);
        return this.buf.subarray(start, this.pos);
      case WT_I64:
        if (this.end - this.pos < 8) this.fail(what, `truncated fixed64 (need 8 bytes, ${this.end - this.pos} left)`);
        this.pos += 8;
        return this.buf.subarray(start, this.pos);
      case WT_LEN: {
        const n = this.length(what);
        const s = this.pos;
        this.pos += n;
        return this.buf.subarray(s, this.pos);
      }
      case WT_I32:
        this.fixed32(what);
        return this.buf.subarray(start, this.pos);
      default:
        return this.fail(what, `unsupported wire type ${wireType} (${WIRE_NAMES[wireType]})`);
    }
  }

  /** Reads a field key; returns [field number, wire type]. */
  key(what: string): [number, number] {
    const at = this.pos;
    this.varint(`${what} (field key)`);
    if (this.hi !== 0 || this.lo > 0x1fffffff * 8 + 7) this.fail(what, 'field key out of range', at);
    const field = this.lo >>> 3;
    const wt = this.lo & 7;
    if (field === 0) this.fail(what, 'field number 0 is invalid', at);
    if (wt === 3 || wt === 4 || wt > 5) this.fail(`${what}.#${field}`, `unsupported wire type ${wt} (${WIRE_NAMES[wt]})`, at);
    return [field, wt];
  }

  string(what: string): string {
    const n = this.length(what);
    const s = this.pos;
    this.pos += n;
    // Buffer#toString is the fastest decoder but replaces malformed bytes; only then check strictly.
    const str = this.text.toString('utf8', s, this.pos);
    if (str.includes('\uFFFD')) {
      try {
        utf8.decode(this.buf.subarray(s, this.pos));
      } catch {
        this.fail(what, 'string is not valid UTF-8', s);
      }
    }
    return str;
  }
}

function expectWireType(r: WireReader, what: string, got: number, want: number, at: number): void {
  if (got !== want) r.fail(what, `wrong wire type ${got} (${WIRE_NAMES[got]}), expected ${want} (${WIRE_NAMES[want]})`, at);
}

function f32FromBits(bits: number): number {
  F32_U32[0] = bits;
  return F32[0];
}
const F32 = new Float32Array(1);
const F32_U32 = new Uint32Array(F32.buffer);

/** Reads a message described by a field table into an object of present fields. */
function readSpec(r: WireReader, what: string, table: Map<number, FieldDef>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  while (r.pos < r.end) {
    const at = r.pos;
    const [num, wt] = r.key(what);
    const def = table.get(num);
    if (def === undefined) {
      const data = r.skip(`${what}.#${num}`, wt);
      ((out.unknownFields ??= []) as UnknownField[]).push({ field: num, wireType: wt, data: data.slice() });
      continue;
    }
    const name = `${what}.${def.name}`;
    expectWireType(r, name, wt, wireTypeOf(def.kind), at);
    switch (def.kind) {
      case 'string':
        out[def.key] = r.string(name);
        break;
      case 'strings':
        ((out[def.key] ??= []) as string[]).push(r.string(name));
        break;
      case 'bytes': {
        const n = r.length(name);
        out[def.key] = r.buf.slice(r.pos, r.pos + n);
        r.pos += n;
        break;
      }
      case 'float':
        out[def.key] = f32FromBits(r.fixed32(name));
        break;
      case 'bool':
        r.varint(name);
        out[def.key] = r.lo !== 0 || r.hi !== 0;
        break;
      case 'int32':
      case 'enum':
        r.varint(name);
        out[def.key] = r.lo | 0; // low 32 bits, signed (negative int32 are 10-byte varints)
        break;
      case 'uint64':
        r.varint(name);
        out[def.key] = (BigInt(r.hi) << 32n) | BigInt(r.lo);
        break;
    }
  }
  return out;
}

/** Reads one SentencePiece message occupying r.pos … r.end (field names use `#` for the index). */
function readPiece(r: WireReader): SentencePiece {
  const what = 'ModelProto.pieces[#]';
  let piece: string | undefined;
  let score = 0;
  let type: number = PieceType.NORMAL;
  while (r.pos < r.end) {
    const at = r.pos;
    const [num, wt] = r.key(what);
    if (num === 1) {
      expectWireType(r, `${what}.piece`, wt, WT_LEN, at);
      piece = r.string(`${what}.piece`);
    } else if (num === 2) {
      expectWireType(r, `${what}.score`, wt, WT_I32, at);
      score = f32FromBits(r.fixed32(`${what}.score`));
    } else if (num === 3) {
      expectWireType(r, `${what}.type`, wt, WT_VARINT, at);
      r.varint(`${what}.type`);
      type = r.lo | 0;
      if (type < 1 || type > 6) r.fail(`${what}.type`, `unknown piece type ${type} (expected 1..6)`, at);
    } else {
      r.skip(`${what}.#${num}`, wt); // unknown field in a piece: SentencePiece ignores it too
    }
  }
  if (piece === undefined) r.fail(what, 'piece has no text (field 1 missing)');
  if (piece.length === 0) r.fail(`${what}.piece`, 'piece text is empty');
  return { piece, score, type };
}

/**
 * Parses a serialized SentencePiece ModelProto. `file` names the source in errors.
 * Throws FormatError naming the file, the field and the byte offset on any malformation.
 */
export function readModelProto(bytes: Uint8Array, file: string): ModelProto {
  // A Node Buffer's slice() is a view; work on a plain Uint8Array so that captured bytes are copies.
  bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const r = new WireReader(bytes, 0, bytes.length, file);
  const pieces: SentencePiece[] = [];
  const model: ModelProto = { pieces };
  while (r.pos < r.end) {
    const at = r.pos;
    const [num, wt] = r.key('ModelProto');
    const sub = (name: string): WireReader => {
      expectWireType(r, name, wt, WT_LEN, at);
      const n = r.length(name);
      const s = new WireReader(bytes, r.pos, r.pos + n, file);
      r.pos += n;
      return s;
    };
    switch (num) {
      case 1: {
        r.index = pieces.length;
        expectWireType(r, 'ModelProto.pieces[#]', wt, WT_LEN, at);
        const n = r.length('ModelProto.pieces[#]');
        const outer = r.end;
        r.end = r.pos + n;
        pieces.push(readPiece(r));
        r.end = outer;
        break;
      }
      case 2:
        model.trainerSpec = readSpec(sub('ModelProto.trainer_spec'), 'ModelProto.trainer_spec', TRAINER_BY_NUM) as TrainerSpec;
        break;
      case 3:
        model.normalizerSpec = readSpec(sub('ModelProto.normalizer_spec'), 'ModelProto.normalizer_spec', NORMALIZER_BY_NUM) as NormalizerSpec;
        break;
      case 4: {
        const s = sub('ModelProto.self_test_data');
        const samples: SelfTestSample[] = [];
        const data: NonNullable<ModelProto['selfTestData']> = { samples };
        while (s.pos < s.end) {
          const kat = s.pos;
          const [n2, w2] = s.key('ModelProto.self_test_data');
          if (n2 === 1) {
            const name = `ModelProto.self_test_data.samples[${samples.length}]`;
            expectWireType(s, name, w2, WT_LEN, kat);
            const len = s.length(name);
            samples.push(readSpec(new WireReader(bytes, s.pos, s.pos + len, file), name, SAMPLE_BY_NUM) as SelfTestSample);
            s.pos += len;
          } else {
            const d = s.skip(`ModelProto.self_test_data.#${n2}`, w2);
            (data.unknownFields ??= []).push({ field: n2, wireType: w2, data: d.slice() });
          }
        }
        model.selfTestData = data;
        break;
      }
      case 5:
        model.denormalizerSpec = readSpec(sub('ModelProto.denormalizer_spec'), 'ModelProto.denormalizer_spec', NORMALIZER_BY_NUM) as NormalizerSpec;
        break;
      default: {
        const d = r.skip(`ModelProto.#${num}`, wt);
        (model.unknownFields ??= []).push({ field: num, wireType: wt, data: d.slice() });
      }
    }
  }
  if (pieces.length === 0) throw new FormatError(file, 'ModelProto.pieces: no pieces (not a SentencePiece model, or an empty/truncated file)');
  return model;
}

// ---------------------------------------------------------------------------------------------------
// Writer

class WireWriter {
  buf = new Uint8Array(1 << 16);
  pos = 0;

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.pos));
    this.buf = b;
  }

  /** Unsigned varint of a non-negative integer ≤ 2^53. */
  uvarint(v: number): void {
    this.ensure(10);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }

  bigVarint(v: bigint): void {
    this.ensure(10);
    v = BigInt.asUintN(64, v);
    while (v >= 0x80n) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  /** int32/enum: negative values are sign-extended to 64 bits (10 bytes), as protobuf does. */
  int32(v: number): void {
    if (v < 0) this.bigVarint(BigInt(v));
    else this.uvarint(v);
  }

  key(field: number, wt: number): void {
    this.uvarint(field * 8 + wt);
  }

  bytes(b: Uint8Array): void {
    this.uvarint(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  float(v: number): void {
    this.ensure(4);
    F32[0] = v;
    const bits = F32_U32[0];
    this.buf[this.pos++] = bits & 0xff;
    this.buf[this.pos++] = (bits >>> 8) & 0xff;
    this.buf[this.pos++] = (bits >>> 16) & 0xff;
    this.buf[this.pos++] = bits >>> 24;
  }

  /** Writes a length-delimited sub-message produced by `body`. */
  message(field: number, body: (w: WireWriter) => void): void {
    const w = new WireWriter();
    body(w);
    this.key(field, WT_LEN);
    this.bytes(w.buf.subarray(0, w.pos));
  }

  raw(u: UnknownField): void {
    this.key(u.field, u.wireType);
    if (u.wireType === WT_LEN) this.bytes(u.data);
    else {
      this.ensure(u.data.length);
      this.buf.set(u.data, this.pos);
      this.pos += u.data.length;
    }
  }

  result(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

const utf8enc = new TextEncoder();

function writeSpec(w: WireWriter, spec: Record<string, unknown>, defs: FieldDef[], what: string): void {
  // C++ protobuf serializes known fields in field-number order, then unknown fields.
  for (const d of defs) {
    const v = spec[d.key];
    if (v === undefined) continue;
    const bad = (): never => {
      throw new TypeError(`writeModelProto: ${what}.${d.name} must be ${d.kind}, got ${typeof v}`);
    };
    switch (d.kind) {
      case 'string':
        if (typeof v !== 'string') bad();
        w.key(d.num, WT_LEN);
        w.bytes(utf8enc.encode(v as string));
        break;
      case 'strings':
        if (!Array.isArray(v)) bad();
        for (const s of v as unknown[]) {
          if (typeof s !== 'string') bad();
          w.key(d.num, WT_LEN);
          w.bytes(utf8enc.encode(s as string));
        }
        break;
      case 'bytes':
        if (!(v instanceof Uint8Array)) bad();
        w.key(d.num, WT_LEN);
        w.bytes(v as Uint8Array);
        break;
      case 'float':
        if (typeof v !== 'number') bad();
        w.key(d.num, WT_I32);
        w.float(v as number);
        break;
      case 'bool':
        if (typeof v !== 'boolean') bad();
        w.key(d.num, WT_VARINT);
        w.uvarint(v ? 1 : 0);
        break;
      case 'int32':
      case 'enum':
        if (typeof v !== 'number' || !Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) bad();
        w.key(d.num, WT_VARINT);
        w.int32(v as number);
        break;
      case 'uint64':
        if (typeof v !== 'bigint') bad();
        w.key(d.num, WT_VARINT);
        w.bigVarint(v as bigint);
        break;
    }
  }
  for (const u of (spec.unknownFields as UnknownField[] | undefined) ?? []) w.raw(u);
}

/**
 * Serializes a ModelProto (the structure `readModelProto` returns) the way SentencePiece does: pieces in id
 * order (piece, score, and type only when not NORMAL), then trainer_spec, normalizer_spec, self_test_data,
 * denormalizer_spec, each with its present fields in field-number order. SentencePiece loads the result.
 */
export function writeModelProto(model: ModelProto): Uint8Array {
  const w = new WireWriter();
  model.pieces.forEach((p, i) => {
    if (typeof p.piece !== 'string' || p.piece.length === 0) throw new TypeError(`writeModelProto: pieces[${i}].piece must be a non-empty string`);
    if (!Number.isInteger(p.type) || p.type < 1 || p.type > 6) throw new TypeError(`writeModelProto: pieces[${i}].type must be 1..6, got ${p.type}`);
    const text = utf8enc.encode(p.piece);
    const hasType = p.type !== PieceType.NORMAL;
    const len = 1 + varintSize(text.length) + text.length + 5 + (hasType ? 2 : 0);
    w.key(1, WT_LEN);
    w.uvarint(len);
    w.key(1, WT_LEN);
    w.bytes(text);
    w.key(2, WT_I32);
    w.float(p.score);
    if (hasType) {
      w.key(3, WT_VARINT);
      w.uvarint(p.type);
    }
  });
  if (model.trainerSpec) {
    const t = model.trainerSpec as Record<string, unknown>;
    w.message(2, (s) => writeSpec(s, t, TRAINER_FIELDS, 'trainer_spec'));
  }
  if (model.normalizerSpec) {
    const n = model.normalizerSpec as Record<string, unknown>;
    w.message(3, (s) => writeSpec(s, n, NORMALIZER_FIELDS, 'normalizer_spec'));
  }
  if (model.selfTestData) {
    const d = model.selfTestData;
    w.message(4, (s) => {
      for (const sample of d.samples) s.message(1, (m) => writeSpec(m, sample as Record<string, unknown>, SAMPLE_FIELDS, 'self_test_data.samples'));
      for (const u of d.unknownFields ?? []) s.raw(u);
    });
  }
  if (model.denormalizerSpec) {
    const n = model.denormalizerSpec as Record<string, unknown>;
    w.message(5, (s) => writeSpec(s, n, NORMALIZER_FIELDS, 'denormalizer_spec'));
  }
  for (const u of model.unknownFields ?? []) w.raw(u);
  return w.result();
}

function varintSize(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}
