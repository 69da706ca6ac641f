/**
 * Loads any supported model into a GrokModel: open the files (formats/open.ts), map their tensor names to
 * the canonical ones (map.ts), check every shape against the config, and read each tensor's bytes once,
 * straight into memory allocated by the kernels (no second copy, no up-front dequantisation of matrices).
 */
import { FormatError } from '../base/errors.js';
import fs from 'node:fs';
import { openModel } from '../formats/open.js';
import { isQuantizedRef, type ModelSource, type TensorRef } from '../formats/tensor-ref.js';
import { referenceKernels } from '../kernels/reference.js';
import type { Kernels } from '../kernels/types.js';
import { blockFormat, isBlockType, rowBytes } from '../quant/index.js';
import { expertTensorNames, layerTensorNames, type Binding, type ModelBinding } from './binding.js';
import type { GrokConfig } from './config.js';
import { GrokModel, type GrokWeights, type LayerWeights } from './grok.js';
import { bindModel } from './map.js';
import type { Matrix } from '../quant/matrix.js';

export interface LoadOptions {
  kernels?: Kernels;
  /** A config.json / golden.json to use instead of the one found beside the model. */
  configPath?: string;
  /** Called after each tensor with bytes read so far and the total. */
  onProgress?: (done: number, total: number) => void;
}

export interface LoadedModel {
  model: GrokModel;
  source: ModelSource;
  binding: ModelBinding;
}

export async function loadModel(path: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  const source = openModel(path);
  try {
    const binding = bindModel(source, opts.configPath);
    const weights = new WeightReader(binding, opts.kernels ?? referenceKernels, opts.onProgress).read();
    return { model: new GrokModel(binding.config, weights, opts.kernels ?? referenceKernels), source, binding };
  } finally {
    source.close();
  }
}

/** Read `length` bytes at `offset` of `file` into `dst` (chunked: one read call is limited to 2 GiB). */
function readInto(fds: Map<string, number>, file: string, offset: number, dst: Uint8Array): void {
  let fd = fds.get(file);
  if (fd === undefined) {
    fd = fs.openSync(file, 'r');
    fds.set(file, fd);
  }
  const CHUNK = 1 << 30;
  for (let done = 0; done < dst.length;) {
    const n = fs.readSync(fd, dst, done, Math.min(CHUNK, dst.length - done), offset + done);
    if (n === 0) throw new FormatError(file, `unexpected end of file reading ${dst.length} bytes at offset ${offset}`);
    done += n;
  }
}

class WeightReader {
  private fds = new Map<string, number>();
  private done = 0;
  private total = 0;
  private readonly cfg: GrokConfig;

  constructor(private readonly b: ModelBinding, private readonly kernels: Kernels, private readonly onProgress?: (d: number, t: number) => void) {
    this.cfg = b.config;
  }

  read(): GrokWeights {
    const c = this.cfg;
    for (const bind of this.b.tensors.values()) this.total += this.bytesOf(bind);
    try {
      const HK = c.nHeads * c.headDim, GK = c.nKVHeads * c.headDim;
      const layers: LayerWeights[] = [];
      for (let l = 0; l < c.nLayers; l++) {
        for (const n of layerTensorNames) this.need(`blk.${l}.${n}`);
        const p = `blk.${l}.`;
        const experts = (name: (typeof expertTensorNames)[number], nIn: number, nOut: number) =>
          Array.from({ length: c.nExperts }, (_, e) => this.matrix(`${p}${name}.${e}`, nIn, nOut));
        layers.push({
          attn_norm: this.vector(`${p}attn_norm`, c.dModel),
          attn_q: this.matrix(`${p}attn_q`, c.dModel, HK),
          attn_k: this.matrix(`${p}attn_k`, c.dModel, GK),
          attn_v: this.matrix(`${p}attn_v`, c.dModel, GK),
          attn_output: this.matrix(`${p}attn_output`, HK, c.dModel),
          attn_output_norm: this.vector(`${p}attn_output_norm`, c.dModel),
          ffn_norm: this.vector(`${p}ffn_norm`, c.dModel),
          ffn_gate_inp: this.matrix(`${p}ffn_gate_inp`, c.dModel, c.nExperts),
          ffn_gate_exps: experts('ffn_gate_exps', c.dModel, c.ffnSize),
          ffn_up_exps: experts('ffn_up_exps', c.dModel, c.ffnSize),
          ffn_down_exps: experts('ffn_down_exps', c.ffnSize, c.dModel),
          layer_output_norm: this.vector(`${p}layer_output_norm`, c.dModel),
        });
      }
      const weights: GrokWeights = {
        token_embd: this.matrix('token_embd', c.dModel, c.vocabSize),
        output_norm: this.vector('output_norm', c.dModel),
        layers,
      };
      if (this.b.tensors.has('output')) weights.output = this.matrix('output', c.dModel, c.vocabSize);
      return weights;
    } finally {
      for (const fd of this.fds.values()) fs.closeSync(fd);
    }
  }

  /** A tensor's bytes: mapped in place when the kernels can (mapWeight), else read into allocWeight memory. */
  private bytes(file: string, offset: number, length: number): Uint8Array {
    const mapped = this.kernels.mapWeight?.(file, offset, length);
    if (mapped) return mapped;
    const data = this.kernels.allocWeight(length);
    readInto(this.fds, file, offset, data);
    return data;
  }

  private need(name: string): Binding {
    const b = this.b.tensors.get(name);
    if (!b) throw new FormatError('model', `missing tensor '${name}'`);
    return b;
  }

  /** Bytes one binding will read (for progress). */
  private bytesOf(b: Binding): number {
    const count = b.index === undefined ? 1 : b.ref.shape[0]!;
    const base = b.ref.length / count;
    return b.kind === 'xai8' ? base + b.ref.scales.length / count : base;
  }

  private advance(bytes: number): void {
    this.done += bytes;
    this.onProgress?.(this.done, this.total);
  }

  private shapeError(name: string, ref: TensorRef, expected: string): never {
    throw new FormatError(ref.file, `shape mismatch for ${name} (${ref.name}): got [${ref.shape.join(', ')}] ${ref.type}, expected ${expected}`);
  }

  /** Split a stacked tensor's shape: with `index`, the first axis selects the matrix. */
  private inner(name: string, b: Binding, count: number | undefined): readonly number[] {
    const s = b.ref.shape;
    if (b.index === undefined) return s;
    if (s.length < 2 || (count !== undefined && s[0] !== count) || b.index < 0 || b.index >= s[0]!) {
      this.shapeError(name, b.ref, `a stack of ${count ?? '?'} matrices with element ${b.index}`);
    }
    return s.slice(1);
  }

  private vector(name: string, n: number): Float32Array {
    const b = this.need(name);
    const ref = b.ref;
    if (b.kind !== 'vector') throw new FormatError(ref.file, `${name}: expected a vector binding, got ${b.kind}`);
    if (ref.shape.reduce((a, d) => a * d, 1) !== n || !isBlockType(ref.type)) this.shapeError(name, ref, `[${n}] of floats`);
    const bytes = new Uint8Array(ref.length);
    readInto(this.fds, ref.file, ref.offset, bytes);
    const out = new Float32Array(n);
    blockFormat(ref.type).dequantize(bytes, 0, n, out, 0);
    this.advance(ref.length);
    return out;
  }

  private matrix(name: string, nIn: number, nOut: number): Matrix {
    const b = this.need(name);
    const ref = b.ref;
    const count = name.includes('_exps.') ? this.cfg.nExperts : undefined;
    const s = this.inner(name, b, count);
    const index = b.index ?? 0;
    if (b.kind === 'rows') {
      if (!isBlockType(ref.type)) this.shapeError(name, ref, 'a float or block-quantised type');
      const f = blockFormat(ref.type);
      if (s.length !== 2 || s[0] !== nOut || s[1] !== nIn) this.shapeError(name, ref, `[${nOut}, ${nIn}] ([out, in])`);
      const rb = rowBytes(f, nIn);
      const data = this.bytes(ref.file, ref.offset + index * rb * nOut, rb * nOut);
      this.advance(data.length);
      return { layout: 'rows', type: ref.type, nIn, nOut, data };
    }
    if (b.kind === 'transpose') {
      if (!isBlockType(ref.type) || blockFormat(ref.type).blockSize !== 1) this.shapeError(name, ref, 'a plain float matrix');
      if (s.length !== 2 || s[0] !== nIn || s[1] !== nOut) this.shapeError(name, ref, `[${nIn}, ${nOut}] ([in, out])`);
      const f = blockFormat(ref.type);
      const raw = new Uint8Array(nIn * nOut * f.bytesPerBlock);
      readInto(this.fds, ref.file, ref.offset + index * raw.length, raw);
      const vals = new Float32Array(nIn * nOut);
      f.dequantize(raw, 0, nIn * nOut, vals, 0);
      const data = this.kernels.allocWeight(nIn * nOut * 4);
      const t = new Float32Array(data.buffer, data.byteOffset, nIn * nOut);
      for (let k = 0; k < nIn; k++) for (let n = 0; n < nOut; n++) t[n * nIn + k] = vals[k * nOut + n]!;
      this.advance(raw.length);
      return { layout: 'rows', type: 'f32', nIn, nOut, data };
    }
    if (b.kind === 'xai8') {
      if (!isQuantizedRef(ref)) throw new FormatError(ref.file, `${name}: int8 binding without scales`);
      if (ref.type !== 'i8') this.shapeError(name, ref, 'int8 weights');
      if (s.length !== 2 || s[0] !== nIn || s[1] !== nOut) this.shapeError(name, ref, `[${nIn}, ${nOut}] ([in, out])`);
      const sc = ref.scales;
      const ss = b.index === undefined ? sc.shape : sc.shape.slice(1);
      const groups = ss[0]!;
      if (ss.length !== 2 || ss[1] !== nOut || !(groups > 0) || nIn % groups !== 0 || (b.index !== undefined && sc.shape[0] !== ref.shape[0])) {
        throw new FormatError(sc.file, `shape mismatch for ${name} scales: got [${sc.shape.join(', ')}], expected [G, ${nOut}] with G dividing ${nIn}`);
      }
      if (sc.type !== 'bf16') throw new FormatError(sc.file, `${name}: scales must be bfloat16, got ${sc.type}`);
      const qBytes = this.bytes(ref.file, ref.offset + index * nIn * nOut, nIn * nOut);
      const sBytes = this.bytes(sc.file, sc.offset + index * groups * nOut * 2, groups * nOut * 2);
      this.advance(qBytes.length + sBytes.length);
      return {
        layout: 'xai8', nIn, nOut, groups,
        q: new Int8Array(qBytes.buffer, qBytes.byteOffset, qBytes.length),
        scales: new Uint16Array(sBytes.buffer, sBytes.byteOffset, groups * nOut),
      };
    }
    throw new FormatError(ref.file, `${name}: a ${b.kind} binding cannot be used as a matrix`);
  }
}
