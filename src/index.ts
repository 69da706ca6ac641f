/** grok-ts as a library: load a Grok-1 model and generate. See src/api/index.ts for the API. */
export {
  loadModel, Grok, TextModel, NoTokenizerError, defaultModelPath, packageRoot, tokenizerOf,
  Scheduler, QueueFullError, ContextLengthError, makeSampler, candidateTokens, SamplingError, NonFiniteLogitsError, TokenHistory, Rng,
} from './api/index.js';
export type {
  LoadModelOptions, TextGenerateOptions, TextChunk, TextStream, Completion, Usage, Timings, TopAlternative, TextFinishReason,
  GenerateOptions, FinishReason, RequestStats, GeneratedToken, BatchModel, SchedulerOptions, TokenRouting,
  SamplingOptions, SampleResult, TokenLogprob, Sampler, Engine, EngineRequest,
} from './api/index.js';
export { loadModelInWorker, startModelWorker, WorkerGrok, type ModelLoading, type WorkerExit, type WorkerModelOptions } from './api/worker/client.js';
export { ModelFileChangedError, ModelTooLargeError } from './base/errors.js';
export { Tokenizer } from './tokenizer/sentencepiece.js';
export type { GrokConfig } from './model/config.js';
export { pull, resolveModelPath, hubCacheDir, HubError, ChecksumError, DiskSpaceError } from './hub/index.js';
export type { PullOptions, PullProgress, PullPlan, PullResult } from './hub/index.js';
export { routingRows, expertUsage, formatRouting, routingJson, routingSvg, type RoutedToken } from './api/routing.js';
