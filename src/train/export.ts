/**
 * Saves a trained model as GGUF, architecture `grok` (llama.cpp LLM_ARCH_GROK), float32, with its SentencePiece
 * vocabulary embedded (tokenizer.ggml.*, ggml docs/gguf.md), through the project's GgufWriter. The parameter names and [out, in]
 * layouts of ParamSet are already GGUF's, so tensors are written as they are.
 */
import { vocabularyFromModelProto } from '../tokenizer/vocabulary.js';
import { addGrokMetadata, addVocabulary } from '../model/gguf-grok.js';
import { GgufWriter } from '../formats/gguf-writer.js';
import type { ModelProto } from '../tokenizer/protobuf.js';
import type { ParamSet } from './model.js';

export async function exportGguf(file: string, params: ParamSet, tokenizer: ModelProto, meta: { name: string; description?: string }): Promise<void> {
  const c = params.config;
  const w = new GgufWriter(file);
  try {
    addGrokMetadata(w, c, { name: meta.name, fileType: 0, description: meta.description }); // all F32
    if (tokenizer.pieces.length !== c.vocabSize) {
      throw new Error(`exportGguf: tokenizer has ${tokenizer.pieces.length} pieces, model vocabulary is ${c.vocabSize}`);
    }
    addVocabulary(w, vocabularyFromModelProto(tokenizer));

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
