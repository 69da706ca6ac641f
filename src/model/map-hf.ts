/**
 * Hugging Face Grok-1 ports (safetensors) → ModelBinding, by the hfA / hfB columns of the tensor table.
 *
 * Both families store PyTorch [out, in] matrices ('rows' layout, no transpose) with experts split into
 * one 2-D tensor each. Family A (keyfan/grok-1-hf) keeps the xAI module names; family B (hpcai-tech)
 * uses model.layers.N.* names and `.scale` norms. Each slot lists every spelling seen in the wild, tried
 * in order: derivative files name the router `block_sparse_moe.gate` and the experts
 * `block_sparse_moe.experts.E.linear…`, and llama.cpp also accepts Mixtral-style `w1/w2/w3`
 * (w1 = linear = gate, w3 = linear_v = up, w2 = linear_1 = down).
 * The config comes from config.json beside the weights (metadata 'hf.config') or an explicit configPath.
 */
import { ConfigError, FormatError } from '../base/errors.js';
import { TP_SHARD } from '../formats/safetensors.js';
import { type ModelSource, type TensorRef } from '../formats/tensor-ref.js';
import type { Binding, ModelBinding } from './binding.js';
import { configFromJson, readConfigFile, type GrokConfig } from './config.js';
import { LAYER_TENSORS, MODEL_TENSORS, presence, tensorDef, type TensorDef } from './tensors.js';

type Kind = 'vector' | 'rows';
type Slot = readonly [canonical: string, kind: Kind, names: readonly string[], def: TensorDef];
/** `{L}` = layer number, `{E}` = expert number. */
interface Family {
  readonly name: string;
  /** A tensor whose presence identifies the family. */
  readonly marker: string;
  readonly global: readonly Slot[];
  readonly layer: readonly Slot[];
}

/** A family's slots from the tensor table's column for it. */
function family(name: string, column: 'hfA' | 'hfB'): Family {
  const kind = (t: TensorDef): Kind => (t.kind === 'vector' ? 'vector' : 'rows');
  return {
    name,
    marker: tensorDef('token_embd')[column][0]!,
    global: MODEL_TENSORS.map((t) => [t.name, kind(t), t[column], t]),
    layer: LAYER_TENSORS.map((t) => [t.scope === 'expert' ? `${t.name}.{E}` : t.name, kind(t), t[column], t]),
  };
}

export const FAMILY_A = family('A (xAI-like names, keyfan/grok-1-hf)', 'hfA');
export const FAMILY_B = family('B (hpcai-tech/grok-1 names)', 'hfB');

export const HF_FAMILIES: readonly Family[] = [FAMILY_A, FAMILY_B];

export function detectHfFamily(source: ModelSource): Family {
  const f = HF_FAMILIES.find((fam) => source.tensors.has(fam.marker));
  if (!f) {
    throw new FormatError(source.path, `not a known Hugging Face Grok-1 layout: found neither ${HF_FAMILIES.map((x) => `'${x.marker}'`).join(' nor ')} ` +
      `(first tensors: ${[...source.tensors.keys()].slice(0, 3).join(', ')})`);
  }
  return f;
}

/** The HF config: an explicit file, else config.json read beside the weights. */
export function hfConfig(source: ModelSource, configPath?: string): GrokConfig {
  if (configPath !== undefined) return readConfigFile(configPath);
  const c = source.metadata.get('hf.config');
  if (c === undefined) {
    throw new ConfigError(source.path, 'no config.json beside the safetensors weights: the model\'s hyper-parameters are unknown. ' +
      'Put the port\'s config.json next to the weights or pass a config file (configPath / --config).');
  }
  return configFromJson(c, `${source.path} (config.json)`);
}

/** Ranks of a tensor-parallel release (formats/safetensors.ts), 0 for an ordinary file set. */
function tpRanks(source: ModelSource): number {
  const r = source.metadata.get('safetensors.tpRanks');
  return typeof r === 'number' ? r : 0;
}

export function bindHf(source: ModelSource, configPath?: string): ModelBinding {
  const family = detectHfFamily(source);
  const config = hfConfig(source, configPath);
  const tensors = new Map<string, Binding>();
  const ranks = tpRanks(source);
  const put = (canonical: string, kind: Kind, names: readonly string[], required: boolean, def?: TensorDef) => {
    let ref: TensorRef | undefined;
    for (const n of names) if ((ref = source.tensors.get(n))) break;
    if (!ref && ranks > 0 && kind === 'rows') {
      // A tensor-parallel release: the matrix as its R shards, split along the table's axis.
      for (const n of names) {
        const shards = Array.from({ length: ranks }, (_, r) => source.tensors.get(`${n}${TP_SHARD}${r}`));
        if (!shards[0]) continue;
        if (!def?.tpAxis) throw new FormatError(shards[0].file, `'${n}' is sharded for tensor parallelism, but this runtime does not know along which axis ${canonical} is split`);
        tensors.set(canonical, { kind: 'sharded', axis: def.tpAxis, ref: shards[0], shards: shards as TensorRef[] });
        return;
      }
    }
    if (!ref) {
      if (!required) return;
      throw new FormatError(source.path, `missing tensor ${names.map((n) => `'${n}'`).join(' or ')} (for ${canonical}; HF family ${family.name})`);
    }
    tensors.set(canonical, { kind, ref });
  };
  for (const [c, k, names, def] of family.global) {
    const p = presence(def, config);
    if (p !== 'absent') put(c, k, names, p === 'required');
  }
  for (let l = 0; l < config.nLayers; l++) {
    const sub = (s: string, e = 0) => s.replaceAll('{L}', String(l)).replaceAll('{E}', String(e));
    for (const [c, k, names, def] of family.layer) {
      if (presence(def, config) === 'absent') continue;
      const perExpert = c.includes('{E}');
      for (let e = 0; e < (perExpert ? config.nExperts : 1); e++) {
        put(`blk.${l}.${sub(c, e)}`, k, names.map((n) => sub(n, e)), true, def);
      }
    }
  }
  return { config, tensors };
}
