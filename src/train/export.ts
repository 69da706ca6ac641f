/**
 * Saves a trained model as GGUF, architecture `grok` (formats.md §3.6), float32, with its SentencePiece
 * vocabulary embedded (§3.7), through the project's GgufWriter. The parameter names and [out, in]
 * layouts of ParamSet are already GGUF's, so tensors are written as they are.
 */
import { GgufWriter } from '../formats/gguf-writer.js';
import type { ModelProto } from '../tokenizer/protobuf.js';
import type { ParamSet } from './model.js';

export async function exportGguf(file: string, params: ParamSet, tokenizer: ModelProto, meta: { name: string; description?: string }): Promise<void> {
  const c = params.config;
  const w = new GgufWriter(file);
  try {
    w.addMetadata('general.architecture', 'string', 'grok');
    w.addMetadata('general.name', 'string', meta.name);
    if (meta.description) w.addMetadata('general.description', 'string', meta.description);
    w.addMetadata('general.file_type', 'u32', 0); // all F32
    w.addMetadata('grok.context_length', 'u32', c.contextLength);
    w.addMetadata('grok.embedding_length', 'u32', c.dModel);
    w.addMetadata('grok.block_count', 'u32', c.nLayers);
    w.addMetadata('grok.feed_forward_length', 'u32', c.ffnSize);
    w.addMetadata('grok.expert_feed_forward_length', 'u32', c.ffnSize);
    w.addMetadata('grok.attention.head_count', 'u32', c.nHeads);
    w.addMetadata('grok.attention.head_count_kv', 'u32', c.nKVHeads);
    w.addMetadata('grok.attention.key_length', 'u32', c.headDim);
    w.addMetadata('grok.attention.value_length', 'u32', c.headDim);
    w.addMetadata('grok.rope.dimension_count', 'u32', c.headDim);
    w.addMetadata('grok.attention.layer_norm_rms_epsilon', 'f32', c.rmsNormEps);
    w.addMetadata('grok.expert_count', 'u32', c.nExperts);
    w.addMetadata('grok.expert_used_count', 'u32', c.nExpertsUsed);
    w.addMetadata('grok.rope.freq_base', 'f32', c.ropeBase);
    w.addMetadata('grok.vocab_size', 'u32', c.vocabSize);
    w.addMetadata('grok.embedding_scale', 'f32', c.embeddingMultiplier);
    w.addMetadata('grok.logit_scale', 'f32', c.outputMultiplier);
    w.addMetadata('grok.attention.output_scale', 'f32', c.attnOutputMultiplier);
    w.addMetadata('grok.attn_logit_softcapping', 'f32', c.attnSoftcap);

    const pieces = tokenizer.pieces;
    if (pieces.length !== c.vocabSize) throw new Error(`exportGguf: tokenizer has ${pieces.length} pieces, model vocabulary is ${c.vocabSize}`);
    const ts = tokenizer.trainerSpec ?? {};
    const ns = tokenizer.normalizerSpec ?? {};
    w.addMetadata('tokenizer.ggml.model', 'string', 'llama');
    w.addMetadata('tokenizer.ggml.pre', 'string', 'default');
    w.addMetadata('tokenizer.ggml.tokens', 'string[]', pieces.map((p) => p.piece));
    w.addMetadata('tokenizer.ggml.scores', 'f32[]', pieces.map((p) => p.score));
    w.addMetadata('tokenizer.ggml.token_type', 'i32[]', pieces.map((p) => p.type));
    w.addMetadata('tokenizer.ggml.bos_token_id', 'u32', ts.bosId ?? c.bosToken);
    w.addMetadata('tokenizer.ggml.eos_token_id', 'u32', ts.eosId ?? c.eosToken);
    w.addMetadata('tokenizer.ggml.unknown_token_id', 'u32', ts.unkId ?? 3);
    w.addMetadata('tokenizer.ggml.padding_token_id', 'u32', ts.padId ?? c.padToken);
    w.addMetadata('tokenizer.ggml.add_bos_token', 'bool', false);
    w.addMetadata('tokenizer.ggml.add_eos_token', 'bool', false);
    w.addMetadata('tokenizer.ggml.add_space_prefix', 'bool', ns.addDummyPrefix ?? true);
    w.addMetadata('tokenizer.ggml.remove_extra_whitespaces', 'bool', ns.removeExtraWhitespaces ?? true);

    for (const p of params.list) w.addTensorInfo(p.name, 'f32', p.shape);
    await w.writeHeader();
    for (const p of params.list) {
      const f = p.data instanceof Float32Array ? p.data : Float32Array.from(p.data);
      await w.writeTensorData(p.name, new Uint8Array(f.buffer, f.byteOffset, f.byteLength));
    }
    await w.close();
  } catch (e) {
    await w.abort();
    throw e;
  }
}
