/**
 * Addresses: whether a host is loopback, where a server listening on all interfaces can be reached, and the
 * key connections are counted under per client.
 */
import os from 'node:os';
import type { AddressInfo } from 'node:net';

/** Whether a --host value only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '::ffff:127.0.0.1';
}

/** http://address:port for a bound socket address (IPv6 in brackets). */
export function urlOf(a: AddressInfo): string {
  return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
}

/** The URLs a listening URL is reachable at: itself, or every interface's address for 0.0.0.0 / [::]. */
export function reachableUrls(url: string): string[] {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (host !== '0.0.0.0' && host !== '::') return [url];
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      if (host === '0.0.0.0' && a.family !== 'IPv4') continue;
      if (a.family === 'IPv6' && a.scopeid) continue; // link-local addresses need a zone id
      out.push(urlOf({ address: a.address, family: a.family, port: Number(u.port) }));
    }
  }
  return out;
}

/**
 * The client a connection is counted under for the per-address cap: its IPv4 address (IPv4-mapped IPv6
 * included), or the /64 an IPv6 address lies in, since one IPv6 host usually holds a whole /64.
 */
export function clientKey(address: string | undefined): string {
  if (address === undefined) return '?';
  const a = address.toLowerCase().replace(/%.*$/, '').replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
  if (!a.includes(':')) return a;
  const [head = '', tail] = a.split('::');
  const groups = head === '' ? [] : head.split(':');
  if (tail !== undefined) {
    const rest = tail === '' ? [] : tail.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g])); // a dotted tail is two groups
    groups.push(...Array<string>(Math.max(0, 8 - groups.length - rest.length)).fill('0'), ...rest);
  }
  return `${groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`;
}
