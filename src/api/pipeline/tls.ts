/**
 * Mutual TLS between pipeline stages (`--stage-tls-cert/-key/-ca`): the files read once at start-up, the
 * gRPC credentials of a stage's server (client certificates required, checked against the CA) and of a
 * link to the next stage (the stage's certificate checked against the CA and the address it is dialled
 * by), and plain words for what grpc-js reports when a TLS handshake fails.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';

/** This side's certificate and key, and the CA its peers' certificates must be signed by (PEM). */
export interface StageTls {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

/** The files of the three flags, as given (all or none). */
export interface StageTlsFiles {
  cert?: string | undefined;
  key?: string | undefined;
  ca?: string | undefined;
}

const FLAGS = { cert: '--stage-tls-cert', key: '--stage-tls-key', ca: '--stage-tls-ca' } as const;

/**
 * The three files read and checked (PEM, the key belongs to the certificate, the certificate within its
 * dates), or null when none is given. A RangeError names the flag and the file.
 */
export function readStageTls(files: StageTlsFiles): StageTls | null {
  const given = (Object.keys(FLAGS) as (keyof typeof FLAGS)[]).filter((k) => files[k] !== undefined);
  if (given.length === 0) return null;
  if (given.length < 3) {
    const missing = (Object.keys(FLAGS) as (keyof typeof FLAGS)[]).filter((k) => files[k] === undefined).map((k) => FLAGS[k]);
    throw new RangeError(`mutual TLS between stages needs --stage-tls-cert, --stage-tls-key and --stage-tls-ca together: ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} missing`);
  }
  const read = (k: keyof typeof FLAGS): Buffer => {
    const f = files[k]!;
    try {
      return fs.readFileSync(f);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new RangeError(`${FLAGS[k]} ${f}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'a folder, not a file' : code === 'EACCES' ? 'not readable by this process' : (e as Error).message}`);
    }
  };
  const cert = read('cert'), key = read('key'), ca = read('ca');
  const x509 = (b: Buffer, k: 'cert' | 'ca'): crypto.X509Certificate => {
    if (!b.includes('-----BEGIN CERTIFICATE-----')) throw new RangeError(`${FLAGS[k]} ${files[k]}: not a PEM certificate (expected a '-----BEGIN CERTIFICATE-----' block)`);
    try {
      return new crypto.X509Certificate(b);
    } catch (e) {
      throw new RangeError(`${FLAGS[k]} ${files[k]}: not a readable PEM certificate (${(e as Error).message})`);
    }
  };
  const own = x509(cert, 'cert');
  x509(ca, 'ca');
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key.toString('latin1'))) throw new RangeError(`${FLAGS.key} ${files.key}: not a PEM private key (expected a '-----BEGIN … PRIVATE KEY-----' block)`);
  let privateKey: crypto.KeyObject;
  try {
    privateKey = crypto.createPrivateKey(key);
  } catch (e) {
    throw new RangeError(`${FLAGS.key} ${files.key}: not a readable private key (${(e as Error).message}; an encrypted key is not supported)`);
  }
  if (!own.checkPrivateKey(privateKey)) throw new RangeError(`${FLAGS.key} ${files.key} is not the key of ${FLAGS.cert} ${files.cert}`);
  const now = Date.now();
  if (Date.parse(own.validTo) < now) throw new RangeError(`${FLAGS.cert} ${files.cert}: the certificate expired on ${own.validTo}`);
  if (Date.parse(own.validFrom) > now) throw new RangeError(`${FLAGS.cert} ${files.cert}: the certificate is not valid before ${own.validFrom}`);
  return { cert, key, ca };
}

/** A stage's server: TLS with client certificates required and checked against the CA; plaintext without. */
export function serverCredentials(t: StageTls | null | undefined): grpc.ServerCredentials {
  return t ? grpc.ServerCredentials.createSsl(t.ca, [{ cert_chain: t.cert, private_key: t.key }], true) : grpc.ServerCredentials.createInsecure();
}

/** The name TLS is told (SNI) when the next stage is dialled by an IP address, which SNI may not carry (RFC 6066; Node warns). */
const SNI_FOR_IP = 'grok-stage';

/**
 * A link's credentials and the channel options they need, for the next stage at `next` (HOST:PORT): its
 * certificate must be signed by the CA and carry HOST (an IP or DNS subjectAltName).
 */
export function linkCredentials(t: StageTls | null | undefined, next: string): { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions } {
  if (!t) return { credentials: grpc.credentials.createInsecure(), options: {} };
  const host = next.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  const ip = net.isIP(host) !== 0;
  // grpc-js hands the override to the check in place of the host: check the address really dialled.
  const credentials = grpc.credentials.createSsl(t.ca, t.key, t.cert, { checkServerIdentity: (_name, cert) => tls.checkServerIdentity(host, cert) });
  return { credentials, options: ip ? { 'grpc.ssl_target_name_override': SNI_FOR_IP } : {} };
}

const BOTH = '--stage-tls-cert, --stage-tls-key and --stage-tls-ca';

/**
 * What a failed connection to the next stage means, when it is about TLS: grpc-js's "No connection
 * established. Last error: …" put in words (null for anything else). `secure`: this side dials with TLS.
 */
export function explainConnectError(details: string, secure: boolean): string | null {
  const at = details.indexOf('Last error: ');
  if (at < 0) return null;
  const last = details.slice(at + 'Last error: '.length)
    .replace(/\s*Resolution note:[\s\S]*$/, '')
    .replace(/\s*\(\d{4}-\d\d-\d\dT[\d:.]+Z\)\.?$/, '')
    .replace(/^Error(?: \[\w+\])?: /, '')
    .replace(/[\s.]+$/, '');
  let m: RegExpExecArray | null;
  if ((m = /Hostname\/IP does not match certificate's altnames: (.*)/.exec(last))) {
    return `TLS handshake failed: its certificate does not match the address it is dialled by (${m[1]}): dial it by an address its certificate carries, or give its certificate a subjectAltName for that address (IP:… for an IP address, DNS:… for a name)`;
  }
  if (/self[- ]signed certificate|unable to get (local )?issuer certificate|unable to verify the first certificate|certificate signature failure/i.test(last)) {
    return `TLS handshake failed: its certificate is not signed by this side's --stage-tls-ca (${last})`;
  }
  if ((m = /(certificate has expired|certificate is not yet valid)/i.exec(last))) return `TLS handshake failed: its ${m[1]!.toLowerCase()}`;
  if (/wrong version number|packet length too long|unknown protocol|http request/i.test(last)) {
    return `TLS handshake failed: it does not speak TLS (start it with ${BOTH} too, or drop them here)`;
  }
  if ((m = /alert (unknown ca|bad certificate|certificate unknown|certificate required|decrypt error|handshake failure)/i.exec(last))) {
    return `TLS handshake failed: it refused this side's certificate (${m[1]}): its --stage-tls-ca must have signed this side's --stage-tls-cert`;
  }
  if (secure && /disconnected before secure TLS connection was established/.test(last)) {
    return `TLS handshake failed: it closed the connection during the handshake (is it a stage started with ${BOTH}, with a CA that signed this side's certificate?)`;
  }
  // The connection closed before the HTTP/2 settings came, with no error: after a TLS handshake this side
  // completed, that is the stage rejecting this side's certificate (Node's TLS server closes without an alert).
  if (/^Failed to connect$/.test(last)) {
    return secure
      ? `TLS handshake failed: it closed the connection on receiving this side's certificate: its --stage-tls-ca must have signed this side's --stage-tls-cert`
      : `it closed the connection before the gRPC handshake: it may require TLS (then give this side ${BOTH} too)`;
  }
  return null;
}
