/** The package's version, read from package.json (found from this file, not from the working directory). */
import fs from 'node:fs';

export function packageVersion(): string {
  const pj = new URL('../../../package.json', import.meta.url);
  return (JSON.parse(fs.readFileSync(pj, 'utf8')) as { version: string }).version;
}
