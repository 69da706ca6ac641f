/**
 * The llama.cpp peer (node-llama-cpp's prebuilt CPU binaries), installed on its own in peer/ by
 * `npm run peer` so that `npm install` of grok-ts stays small. Tests and benchmarks load it from there.
 * Only the part of node-llama-cpp's API this project calls is typed here (the package itself is not a
 * dependency of the main build, so its types cannot be).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const PEER_DIR = fileURLToPath(new URL('../../peer/', import.meta.url));

export interface LlamaContextSequence {
  controlledEvaluate(input: (number | [number, { generateNext: { token?: boolean; logits?: boolean } }])[]): Promise<({ next: { token?: number; logits?: Map<number, number> } } | undefined)[]>;
}
export interface LlamaContext {
  getSequence(): LlamaContextSequence;
  dispose(): Promise<void>;
}
export interface LlamaModel {
  createContext(o: Record<string, unknown>): Promise<LlamaContext>;
  tokenize(text: string, specialTokens?: boolean): number[];
  detokenize(tokens: readonly number[], specialTokens?: boolean): string;
  dispose(): Promise<void>;
}
export interface Llama {
  loadModel(o: { modelPath: string; gpuLayers: number; useMmap?: boolean; vocabOnly?: boolean }): Promise<LlamaModel>;
  dispose(): Promise<void>;
}
interface NodeLlamaCpp {
  getLlama(o: Record<string, unknown>): Promise<Llama>;
  LlamaLogLevel: { error: unknown; info: unknown };
}

/**
 * llama.cpp with its prebuilt CPU binary: never builds, never downloads, no GPU. Throws when not installed.
 * `onLog`: llama.cpp's messages down to its info level (the loader's print_info lines) go to it.
 */
export async function loadLlama(onLog?: (message: string) => void): Promise<Llama> {
  const pkg = path.join(PEER_DIR, 'node_modules', 'node-llama-cpp', 'package.json');
  if (!fs.existsSync(pkg)) throw new Error(`the llama.cpp peer is not installed (${path.dirname(pkg)} is missing): run \`npm run peer\``);
  const nlc = (await import(pathToFileURL(path.join(path.dirname(pkg), 'dist', 'index.js')).href)) as NodeLlamaCpp;
  const log = onLog ? { logLevel: nlc.LlamaLogLevel.info, logger: (_level: unknown, message: string) => onLog(message) } : { logLevel: nlc.LlamaLogLevel.error };
  return nlc.getLlama({ gpu: false, build: 'never', skipDownload: true, progressLogs: false, ...log });
}
