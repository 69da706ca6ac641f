/**
 * The web page's files (built from web/ into dist/web by `npm run build`), served at / from memory.
 * Only the files found when the server starts are routes, each at its exact name, so no request path
 * can reach anything else. They are public (the page asks for the API key itself).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.json': 'application/json', '.map': 'application/json',
};

/** Register the page's files; returns how many were found (0: the page was not built). */
export function registerStaticPage(app: FastifyInstance, root: string): number {
  let names: string[] = [];
  try {
    names = fs.readdirSync(root, { withFileTypes: true }).filter((e) => e.isFile() && TYPES[path.extname(e.name)] !== undefined).map((e) => e.name);
  } catch { /* no page */ }
  for (const name of names) {
    const body = fs.readFileSync(path.join(root, name));
    const type = TYPES[path.extname(name)]!;
    const handler = async (_req: unknown, reply: FastifyReply) =>
      reply.type(type).header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff').send(body);
    app.get(`/${name}`, { config: { public: true } }, handler);
    if (name === 'index.html') app.get('/', { config: { public: true } }, handler);
  }
  if (!names.includes('index.html')) {
    app.get('/', { config: { public: true } }, async (_req, reply) =>
      reply.code(404).type('text/plain; charset=utf-8').send(`The web page is not built (no ${path.join(root, 'index.html')}): run npm run build.\n`));
  }
  return names.length;
}
