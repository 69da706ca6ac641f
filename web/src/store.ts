/** Conversations kept in this browser (localStorage), exportable and importable as JSON. */

export interface Message {
  role: 'user' | 'assistant' | 'system';
  content: string;
}

export interface Conversation {
  id: string;
  title: string;
  mode: 'completion' | 'chat';
  /** Completion mode: the prompt and what the model wrote after it. */
  prompt: string;
  completion: string;
  /** Chat mode. */
  messages: Message[];
  updated: number;
}

const KEY = 'grok-ts.conversations';

export function newConversation(mode: Conversation['mode']): Conversation {
  return { id: crypto.randomUUID(), title: 'New conversation', mode, prompt: '', completion: '', messages: [], updated: Date.now() };
}

function valid(c: unknown): c is Conversation {
  const x = c as Conversation;
  return typeof x === 'object' && x !== null && typeof x.id === 'string' && (x.mode === 'completion' || x.mode === 'chat') &&
    typeof x.prompt === 'string' && typeof x.completion === 'string' && Array.isArray(x.messages) &&
    x.messages.every((m) => (m.role === 'user' || m.role === 'assistant' || m.role === 'system') && typeof m.content === 'string');
}

export class Store {
  list: Conversation[];

  constructor() {
    let parsed: unknown = [];
    try { parsed = JSON.parse(localStorage.getItem(KEY) ?? '[]'); } catch { /* start afresh */ }
    this.list = Array.isArray(parsed) ? parsed.filter(valid) : [];
  }

  save(): void {
    this.list.sort((a, b) => b.updated - a.updated);
    localStorage.setItem(KEY, JSON.stringify(this.list));
  }

  upsert(c: Conversation): void {
    c.updated = Date.now();
    if (!this.list.includes(c)) this.list.push(c);
    this.save();
  }

  remove(id: string): void {
    this.list = this.list.filter((c) => c.id !== id);
    this.save();
  }

  exportJson(): string {
    return JSON.stringify({ format: 'grok-ts-conversations-1', conversations: this.list }, null, 1);
  }

  /** Adds the file's conversations (same id: the imported one wins); returns how many. */
  importJson(text: string): number {
    const j = JSON.parse(text) as { conversations?: unknown };
    const items = Array.isArray(j) ? j : Array.isArray(j.conversations) ? j.conversations : null;
    if (!items) throw new Error('not a conversations file');
    const good = items.filter(valid);
    for (const c of good) {
      this.list = this.list.filter((x) => x.id !== c.id);
      this.list.push(c);
    }
    this.save();
    return good.length;
  }
}
