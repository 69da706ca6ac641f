// The README's picture of the page (docs/page.png): after `npm run build`, serve the embedded default
// model, generate in the page with Debian's chromium, hover a token, and save a screenshot.
//   node web/screenshot.mjs [out.png] [--phone]
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { loadModel } from '../dist/src/api/index.js';
import { createServer } from '../dist/src/api/server.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = process.argv.find((a) => a.endsWith('.png')) ?? path.join(root, 'docs', 'page.png');
const phone = process.argv.includes('--phone');
const grok = await loadModel();
const server = createServer(grok);
const url = await server.listen({ host: '127.0.0.1', port: 0 });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: phone ? { width: 390, height: 844 } : { width: 1280, height: 820 }, deviceScaleFactor: 1 });
  await page.goto(url);
  await page.waitForFunction(`document.getElementById('model').textContent.includes('context')`);
  if (phone) await page.click('#menu-button'); // the sampling controls live in the menu on a phone
  await page.fill('#max_tokens', phone ? '24' : '60');
  await page.fill('#seed', '3');
  await page.fill('#temperature', '0.7');
  if (phone) await page.click('#menu-button');
  await page.getByTestId('prompt').fill('And God said unto Moses,');
  await page.getByTestId('send').click();
  await page.waitForFunction(`/tokens in/.test(document.getElementById('status').textContent)`);
  await page.locator('[data-testid="output"] .tok').nth(9).hover();
  await page.screenshot({ path: out, fullPage: !phone });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await server.close(0);
  await grok.close();
}
