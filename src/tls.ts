import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type TlsOptions } from 'node:tls';
import { ConfigError, type Config } from './config.js';

/**
 * The certificate every listener serves when TLS is on (docs/tls.md). Read once at
 * start: a renewed certificate takes effect on restart.
 */
export interface TlsCredentials {
  /**
   * PEM: the server certificate followed by its intermediates (tlsCertFile, then
   * tlsCaFile when set): the chain every client is sent.
   */
  readonly cert: Buffer;
  /** PEM: the private key of the certificate. */
  readonly key: Buffer;
  /** When the certificate stops being valid, ms since the epoch. */
  readonly notAfter: number;
  /** The certificate's subject, for the start log. */
  readonly subject: string;
}

/**
 * Reads and checks the configured certificate and key. Undefined when TLS is off.
 * Every problem is a `ConfigError` naming the setting and the file, so a bad path or a
 * key that does not match stops the start with one clear line, not a stack trace.
 */
export function loadTlsCredentials(config: Config): TlsCredentials | undefined {
  if (config.tlsCertFile === undefined || config.tlsKeyFile === undefined) return undefined;
  const leafFile = readPem('tlsCertFile', config.tlsCertFile);
  const key = readPem('tlsKeyFile', config.tlsKeyFile);
  const ca = config.tlsCaFile !== undefined ? readPem('tlsCaFile', config.tlsCaFile) : undefined;
  if (ca !== undefined) {
    try {
      new X509Certificate(ca);
    } catch (err) {
      throw new ConfigError(`tlsCaFile ${config.tlsCaFile ?? ''} does not hold a PEM certificate: ${reason(err)}`, { cause: err });
    }
  }
  // Node sends the chain given as `cert` (leaf first, then intermediates); `ca` would
  // only be a trust store for client certificates, which we do not ask for.
  const cert = ca === undefined ? leafFile : Buffer.concat([leafFile, Buffer.from('\n'), ca]);

  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(leafFile);
  } catch (err) {
    throw new ConfigError(`tlsCertFile ${config.tlsCertFile} does not hold a PEM certificate: ${reason(err)}`, { cause: err });
  }
  try {
    // Parses the key and checks it belongs to the certificate (OpenSSL's "key values
    // mismatch"), the same check every listener would otherwise fail at its first client.
    createSecureContext({ cert, key });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const why =
      code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH'
        ? `tlsKeyFile ${config.tlsKeyFile} is not the key of the certificate in ${config.tlsCertFile}`
        : `cannot use tlsCertFile ${config.tlsCertFile} with tlsKeyFile ${config.tlsKeyFile}: ${reason(err)}`;
    throw new ConfigError(why, { cause: err });
  }
  return {
    cert,
    key,
    notAfter: Date.parse(leaf.validTo),
    subject: leaf.subject.replace(/\n/g, ', '),
  };
}

function readPem(setting: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : reason(err);
    throw new ConfigError(`cannot read ${setting} ${path}: ${why}`, { cause: err });
  }
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** TLS settings of a listener: the loaded certificate and how long a handshake may take. */
export interface TlsListenOptions {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** A socket that has not finished its TLS handshake by then is closed, ms. */
  readonly handshakeTimeoutMs: number;
}

/**
 * Options for `tls.createServer` / `https.createServer`. Node's `handshakeTimeout` is
 * what bounds the TLS handshake: it runs from the TCP accept to the end of the
 * handshake (bytes trickling in do not extend it), and its timers live in Node's
 * shared per-duration lists, cleared once the handshake is done, so it costs no
 * per-connection timer afterwards.
 */
export function tlsServerOptions(tls: TlsListenOptions): TlsOptions {
  return {
    cert: tls.cert,
    key: tls.key,
    handshakeTimeout: tls.handshakeTimeoutMs,
  };
}

