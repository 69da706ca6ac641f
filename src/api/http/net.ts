/** Addresses: whether a host is loopback, and where a server listening on all interfaces can be reached. */
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
