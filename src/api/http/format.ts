/**
 * The two response shapes, one object per kind: `/v1/completions` (text_completion) and
 * `/v1/chat/completions` (chat.completion / chat.completion.chunk). Everything that differs between them
 * — ids, object names, where the text goes, the logprobs layout, the chat role chunk — lives here, so the
 * generation code has no `kind === 'chat'` branches.
 */
import type { Completion, TextModel, TopAlternative } from '../index.js';

/** Tokens with their logprobs and texts, for a logprobs block. */
export interface TokenLogprobs {
  tokens: readonly number[];
  logprobs: readonly number[];
  top?: readonly TopAlternative[][];
  /** The text each token released (for completions' text_offset). */
  text: readonly string[];
}

export type Choice = Record<string, unknown> & { index: number };

export interface ChoiceFormat {
  /** Response id prefix. */
  readonly idPrefix: string;
  readonly object: string;
  readonly chunkObject: string;
  /** The answer follows the chat template's cue ("Assistant:"), so its leading whitespace is not content. */
  readonly trimsLeadingSpace: boolean;
  /** A whole choice of a non-streamed response. */
  choice(index: number, r: Completion, logprobs: unknown): Choice;
  /** The first chunk of a streamed choice, before any text (chat: the role); null if the kind has none. */
  opening(index: number): Choice | null;
  /** A streamed piece of text. */
  delta(index: number, text: string, logprobs: unknown): Choice;
  /** The last chunk of a streamed choice. */
  closing(index: number, finishReason: string): Choice;
  /** The logprobs block for these tokens. */
  logprobs(t: TokenLogprobs): unknown;
}

const utf8 = (s: string) => [...Buffer.from(s, 'utf8')];

export function completionFormat(grok: TextModel): ChoiceFormat {
  return {
    idPrefix: 'cmpl',
    object: 'text_completion',
    chunkObject: 'text_completion',
    trimsLeadingSpace: false,
    choice: (index, r, logprobs) => ({ index, text: r.text, logprobs, finish_reason: r.finishReason }),
    opening: () => null,
    delta: (index, text, logprobs) => ({ index, text, logprobs, finish_reason: null }),
    closing: (index, finishReason) => ({ index, text: '', logprobs: null, finish_reason: finishReason }),
    logprobs(t) {
      let offset = 0;
      const text_offset: number[] = [];
      for (const s of t.text) { text_offset.push(offset); offset += s.length; }
      return {
        tokens: t.tokens.map((id) => grok.tokenText(id)),
        token_logprobs: t.logprobs,
        top_logprobs: t.top ? t.top.map((alts) => Object.fromEntries(alts.map((a) => [a.text, a.logprob]))) : null,
        text_offset,
      };
    },
  };
}

export function chatFormat(grok: TextModel): ChoiceFormat {
  return {
    idPrefix: 'chatcmpl',
    object: 'chat.completion',
    chunkObject: 'chat.completion.chunk',
    trimsLeadingSpace: true,
    choice: (index, r, logprobs) => ({
      index, message: { role: 'assistant', content: r.text.trimStart(), refusal: null }, logprobs, finish_reason: r.finishReason,
    }),
    opening: (index) => ({ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }),
    delta: (index, text, logprobs) => ({ index, delta: { content: text }, logprobs, finish_reason: null }),
    closing: (index, finishReason) => ({ index, delta: {}, logprobs: null, finish_reason: finishReason }),
    logprobs: (t) => ({
      content: t.tokens.map((id, i) => {
        const token = grok.tokenText(id);
        return {
          token, logprob: t.logprobs[i], bytes: utf8(token),
          top_logprobs: (t.top?.[i] ?? []).map((a) => ({ token: a.text, logprob: a.logprob, bytes: utf8(a.text) })),
        };
      }),
      refusal: null,
    }),
  };
}
