/**
 * The Hugging Face hub: `pull` downloads into the hub cache (huggingface_hub's layout), `resolveModelPath`
 * finds a pulled repository again from its id. Network and files only; knows nothing of models.
 */
export { pull, ChecksumError, DiskSpaceError, fmtBytes, cachedCommit } from './pull.js';
export type { PullOptions, PullProgress, PullPlan, PullResult } from './pull.js';
export { HubError, hubEndpoint, tokenFromEnv } from './http.js';
export { hubCacheDir, offlineFromEnv, parseRepoId, repoFolder, resolveModelPath } from './cache.js';
export { quantOf, quantsOf, NotFoundInRepoError } from './select.js';
