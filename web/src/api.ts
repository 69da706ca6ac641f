/** The server's API as the page uses it: model info, and streamed completions as parsed SSE events. */

export interface Info {
  model: string;
  contextLength: number;
  vocabSize: number;
  layers: number;
  experts: number;
  expertsPerToken: number;
  backend: string;
  slots: number;
  tokenizer: boolean;
}

export class AuthError extends Error {}
/** The server is up but its model is still loading (503 model_loading). */
export class LoadingError extends Error {}

const KEY = 'grok-ts.apiKey';

export class Api {
  key: string | null = localStorage.getItem(KEY);

  setKey(key: string): void {
    this.key = key;
    localStorage.setItem(KEY, key);
  }

  private headers(): Record<string, string> {
    const h: Record<string, string> = { 'content-type': 'application/json' };
    if (this.key) h.authorization = `Bearer ${this.key}`;
    return h;
  }

  async info(): Promise<Info> {
    const r = await fetch('info', { headers: this.headers() });
    if (r.status === 401) throw new AuthError('an API key is required');
    if (r.status === 503) {
      const e = await r.json().catch(() => null) as { error?: { code?: string; message?: string } } | null;
      if (e?.error?.code === 'model_loading') throw new LoadingError(e.error.message ?? 'the model is loading');
    }
    if (!r.ok) throw new Error(`GET /info: ${r.status}`);
    return await r.json() as Info;
  }

  /** POST a streaming request; yields each event's JSON until [DONE]. An error event is thrown. */
  async *stream(path: string, body: object, signal: AbortSignal): AsyncGenerator<Record<string, unknown>> {
    const r = await fetch(path, { method: 'POST', headers: this.headers(), body: JSON.stringify({ ...body, stream: true }), signal });
    if (r.status === 401) throw new AuthError('the API key was refused');
    if (!r.ok || !r.body) {
      const e = await r.json().catch(() => null) as { error?: { message?: string } } | null;
      throw new Error(e?.error?.message ?? `${path}: HTTP ${r.status}`);
    }
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let cut: number;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        if (!event.startsWith('data: ')) continue;
        const data = event.slice(6);
        if (data === '[DONE]') return;
        const json = JSON.parse(data) as Record<string, unknown> & { error?: { message: string } };
        if (json.error) throw new Error(json.error.message);
        yield json;
      }
    }
  }
}
