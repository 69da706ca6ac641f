/** Dispatch from a ModelSource to its format's mapping table. */
import { FormatError } from '../base/errors.js';
import { type ModelSource } from '../formats/tensor-ref.js';
import type { ModelBinding } from './binding.js';
import { bindCkpt } from './map-ckpt.js';
import { bindGguf } from './map-gguf.js';
import { bindHf } from './map-hf.js';

type Binder = (source: ModelSource, configPath?: string) => ModelBinding;

const binders = new Map<string, Binder>([['ckpt-0', bindCkpt], ['gguf', bindGguf], ['safetensors', bindHf]]);

export function bindModel(source: ModelSource, configPath?: string): ModelBinding {
  const b = binders.get(source.format);
  if (!b) throw new FormatError(source.path, `no tensor-name mapping for format '${source.format}'`);
  return b(source, configPath);
}
