/**
 * The released checkpoint directory `ckpt-0/tensorNNNNN_000` (xai-org/grok-1 checkpoint.py): one pickle per parameter,
 * in the order JAX flattens the parameter tree (sorted path strings). This module turns file
 * numbers into xAI parameter paths and pickles into tensor references; no bytes of payload are read.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FormatError } from '../base/errors.js';
import { checkContained, modelRoot } from '../base/files.js';
import { readCheckpointTensor, type PickledArray } from './pickle.js';
import { type ModelSource, type QuantizedRef, type TensorRef } from './tensor-ref.js';

/** Parameters of one decoder layer in file order (sorted module paths), with the kind each must have. */
export const CKPT_LAYER_SLOTS = [
  ['moe/linear/w', 'qw8'],
  ['moe/linear_1/w', 'qw8'],
  ['moe/linear_v/w', 'qw8'],
  ['multi_head_attention/key/w', 'qw8'],
  ['multi_head_attention/linear/w', 'qw8'],
  ['multi_head_attention/query/w', 'qw8'],
  ['multi_head_attention/value/w', 'qw8'],
  ['rms_norm/scale', 'array'],
  ['rms_norm_1/scale', 'array'],
  ['rms_norm_2/scale', 'array'],
  ['rms_norm_3/scale', 'array'],
  ['router/w', 'array'],
] as const;

export const CKPT_EMBEDDING = 'language_model/in_out_embed/embeddings';
export const CKPT_FINAL_NORM = 'language_model/rms_norm/scale';

/**
 * Layer numbers in file order: JAX sorts `transformer/decoder_layer_<n>/…` as strings, so the layer
 * number sorts as text followed by '/' (which is below every digit): 0 1 10 11 … 19 2 20 … (jax.tree_util flattening sorts dict keys).
 */
export function layerFileOrder(nLayers: number): number[] {
  const layers = Array.from({ length: nLayers }, (_, i) => i);
  return layers.sort((a, b) => {
    const sa = `${a}/`;
    const sb = `${b}/`;
    return sa < sb ? -1 : sa > sb ? 1 : 0;
  });
}

/** xAI parameter path of every file index, for a model of `nLayers` layers. */
export function ckptParameterPaths(nLayers: number): string[] {
  const paths = [CKPT_EMBEDDING, CKPT_FINAL_NORM];
  for (const layer of layerFileOrder(nLayers)) {
    for (const [slot] of CKPT_LAYER_SLOTS) paths.push(`transformer/decoder_layer_${layer}/${slot}`);
  }
  return paths;
}

const FILE_RE = /^tensor(\d{5})_(\d{3})$/;

/** Resolve a user path (the ckpt-0 directory, or a directory containing it) to the ckpt-0 directory. */
export function findCkptDir(p: string): string | undefined {
  const isCkpt = (d: string) => fs.existsSync(path.join(d, 'tensor00000_000'));
  if (isCkpt(p)) return p;
  const inner = path.join(p, 'ckpt-0');
  if (isCkpt(inner)) return inner;
  return undefined;
}

function toRef(file: string, name: string, a: PickledArray): TensorRef {
  return { name, type: a.dtype, shape: a.shape, file, offset: a.offset, length: a.length };
}

/** Open a ckpt-0 directory (or its parent). Config files found beside it are put into `metadata`. */
export function openCkpt(p: string): ModelSource {
  const dir = findCkptDir(p);
  if (!dir) throw new FormatError(p, 'not a checkpoint directory: no tensor00000_000 here or in ./ckpt-0');
  const names = fs.readdirSync(dir).filter((f) => FILE_RE.test(f)).sort();
  const shards = new Set(names.map((f) => FILE_RE.exec(f)![2]));
  if (shards.size !== 1 || !shards.has('000')) {
    throw new FormatError(dir, `expected only host-shard _000 files, found shards ${[...shards].join(', ')}`);
  }
  const count = names.length;
  names.forEach((f, i) => {
    if (Number(FILE_RE.exec(f)![1]) !== i) throw new FormatError(dir, `tensor files are not numbered 0…${count - 1} without gaps: ${f} is file #${i}`);
  });
  if (count < 2 || (count - 2) % CKPT_LAYER_SLOTS.length !== 0) {
    throw new FormatError(dir, `${count} tensor files: a checkpoint has 2 + ${CKPT_LAYER_SLOTS.length}·layers files (770 for Grok-1)`);
  }
  const nLayers = (count - 2) / CKPT_LAYER_SLOTS.length;
  const paths = ckptParameterPaths(nLayers);
  const tensors = new Map<string, TensorRef | QuantizedRef>();
  const root = modelRoot(dir);
  for (let i = 0; i < count; i++) {
    const file = path.join(dir, names[i]!);
    checkContained(root, file);
    const name = paths[i]!;
    const t = readCheckpointTensor(file);
    const slot = i < 2 ? 'array' : CKPT_LAYER_SLOTS[(i - 2) % CKPT_LAYER_SLOTS.length]![1];
    if (t.kind === 'qw8') {
      if (t.weight.dtype !== 'i8') throw new FormatError(file, `${name}: QuantizedWeight8bit.weight must be int8, got ${t.weight.dtype}`);
      if (t.scales.dtype !== 'bf16') {
        throw new FormatError(file, `${name}: QuantizedWeight8bit.scales must be bfloat16, got ${t.scales.dtype}`);
      }
      tensors.set(name, { ...toRef(file, name, t.weight), scales: toRef(file, `${name}:scales`, t.scales) });
    } else {
      if (slot === 'qw8' && !['f32', 'f16', 'bf16'].includes(t.dtype)) {
        throw new FormatError(file, `${name}: expected a QuantizedWeight8bit or a float array, got a ${t.dtype} array`);
      }
      if (slot === 'array' && !['f32', 'f16', 'bf16'].includes(t.dtype)) {
        throw new FormatError(file, `${name}: expected a float array, got ${t.dtype}`);
      }
      tensors.set(name, toRef(file, name, t));
    }
  }
  const metadata = new Map<string, unknown>();
  metadata.set('ckpt.dir', dir);
  metadata.set('ckpt.layers', nLayers);
  return { format: 'ckpt-0', path: p, tensors, metadata, close() {} };
}
