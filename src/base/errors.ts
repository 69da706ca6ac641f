/**
 * Error classes shared by every layer. Each says which file (or config source) and what was expected, so
 * the CLI can print it as one line and the server as a 4xx without a stack.
 */

/** Bad bytes in an input file: names the file; the message says what was expected. */
export class FormatError extends Error {
  /** `detail`: what is wrong, without the file name (for re-wording by a caller). */
  constructor(readonly file: string, readonly detail: string) {
    super(`${file}: ${detail}`);
    this.name = 'FormatError';
  }
}

/** A model configuration that is missing, contradictory or out of range: names where it came from. */
export class ConfigError extends Error {
  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'ConfigError';
  }
}

/**
 * A mapped model file changed on disk (truncated, or rewritten in place) after it was loaded: its bytes can
 * no longer be trusted and a page past its new end would kill the process (SIGBUS), so the request fails.
 */
export class ModelFileChangedError extends Error {
  constructor(readonly file: string, readonly detail: string) {
    super(`the model file ${file} changed on disk since it was loaded (${detail}); reload the model`);
    this.name = 'ModelFileChangedError';
  }
}

/** Weights that would be copied into memory cannot fit: refused before a byte is read. */
export class ModelTooLargeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelTooLargeError';
  }
}
