/**
 * Chat prompts for a base model. Grok-1 as released is a pretrained base model with no chat format of its
 * own, so messages are laid out as a plain transcript it can continue, and generation stops when the model
 * starts the next user turn:
 *
 *   {system}\n\n            (system / developer messages, if any)
 *   Human: {user}\n\n
 *   Assistant: {assistant}\n\n
 *   …
 *   Assistant:              (the model writes from here; stop strings: "\nHuman:")
 *
 * The answer's leading whitespace (the space after "Assistant:") is not part of the returned content.
 * Override it with a JSON file of the same fields (`grok serve --chat-template file.json`).
 *
 * Grok-2 was released with a chat format of its own (its tokenizer.tok.json and SGLang's template): each
 * turn ends with the special token <|separator|> and a blank line, system text is labelled "System:",
 * and the answer starts after "Assistant:" (GROK2_CHAT_TEMPLATE; the model ends its turn with <|separator|>
 * or <|eos|>).
 */
import fs from 'node:fs';
import { z } from 'zod';

export interface ChatTemplate {
  /** Each is a pattern with `{content}` where the message text goes. */
  system: string;
  user: string;
  assistant: string;
  /** Appended after the last message: where the model's answer starts. */
  generation: string;
  /** Stop strings that end the answer (the start of the next turn). */
  stop: string[];
}

export const DEFAULT_CHAT_TEMPLATE: Readonly<ChatTemplate> = Object.freeze({
  system: '{content}\n\n',
  user: 'Human: {content}\n\n',
  assistant: 'Assistant: {content}\n\n',
  generation: 'Assistant:',
  stop: ['\nHuman:'],
});

export const GROK2_CHAT_TEMPLATE: Readonly<ChatTemplate> = Object.freeze({
  system: 'System: {content}<|separator|>\n\n',
  user: 'Human: {content}<|separator|>\n\n',
  assistant: 'Assistant: {content}<|separator|>\n\n',
  generation: 'Assistant:',
  stop: ['<|separator|>', '\nHuman:'],
});

/** The chat template a model family comes with. */
export function chatTemplateFor(config: { readonly family: 'grok-1' | 'grok-2' }): Readonly<ChatTemplate> {
  return config.family === 'grok-2' ? GROK2_CHAT_TEMPLATE : DEFAULT_CHAT_TEMPLATE;
}

export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant';
  content: string;
}

const templateSchema = z.object({
  system: z.string().includes('{content}'),
  user: z.string().includes('{content}'),
  assistant: z.string().includes('{content}'),
  generation: z.string(),
  stop: z.array(z.string().min(1)).max(4),
}).strict();

/** Read a template file; every field is required so that a typo cannot silently fall back to a default. */
export function loadChatTemplate(file: string): ChatTemplate {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: cannot read the chat template: ${(e as Error).message}`);
  }
  const r = templateSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new Error(`${file}: chat template field '${i.path.join('.') || '(root)'}': ${i.message} (fields: system, user, assistant with {content}; generation; stop: string[])`);
  }
  return r.data;
}

/** The prompt text for a conversation (the model continues it). */
export function renderChat(messages: readonly ChatMessage[], t: ChatTemplate = DEFAULT_CHAT_TEMPLATE): string {
  let s = '';
  for (const m of messages) {
    const pattern = m.role === 'user' ? t.user : m.role === 'assistant' ? t.assistant : t.system;
    s += pattern.split('{content}').join(m.content);
  }
  return s + t.generation;
}
