/**
 * Stop strings on decoded text. Tokens arrive one at a time; text is released only once it can no longer
 * be the beginning of a stop string, so a stop string that spans token boundaries is never emitted, and
 * generation stops on the token that completes it.
 */
import type { StreamDecoder } from '../tokenizer/sentencepiece.js';
import { longestPrefixSuffix } from '../base/sequence.js';

export class StopStringMatcher {
  private held = '';
  private stoppedFlag = false;
  /** Text released for each pushed token, in order (consumed by `take`). */
  private readonly chunks: string[] = [];

  constructor(private readonly decoder: StreamDecoder, private readonly stops: readonly string[]) {
    for (const s of stops) if (s.length === 0) throw new RangeError('a stop string must not be empty');
  }

  /** Feed one emitted token; returns true when a stop string is now complete (generation must end). */
  push(id: number): boolean {
    if (this.stoppedFlag) {
      this.chunks.push('');
      return true;
    }
    this.held += this.decoder.push(id);
    this.chunks.push(this.release(false));
    return this.stoppedFlag;
  }

  /** The text released by the oldest pushed token not yet taken. */
  take(): string {
    return this.chunks.shift() ?? '';
  }

  /** End of generation: the decoder's rest and any held text that did not complete a stop string. */
  finish(): string {
    if (this.stoppedFlag) return '';
    this.held += this.decoder.flush();
    return this.release(true);
  }

  private release(final: boolean): string {
    let cut = -1;
    for (const s of this.stops) {
      const i = this.held.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.stoppedFlag = true;
      const out = this.held.slice(0, cut);
      this.held = '';
      return out;
    }
    const keep = final ? 0 : longestPrefixSuffix(this.held, this.stops);
    const out = this.held.slice(0, this.held.length - keep);
    this.held = this.held.slice(this.held.length - keep);
    return out;
  }
}
