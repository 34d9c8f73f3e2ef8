// The web console's built files (console/dist, made by `npm run build:console`),
// served by the HTTP server at `/`. The console is a single-page app: a path that is
// not a file gets index.html and the console's router takes it from there.
import { readFileSync, statSync } from 'node:fs';
import { extname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * console/dist at the repository (or package) root. This file is src/api/ under tsx and
 * dist/api/ once compiled: both are two folders below the root.
 */
export const CONSOLE_DIST_DIR = fileURLToPath(new URL('../../console/dist/', import.meta.url)).replace(/[\\/]$/, '');

export interface ConsoleFile {
  readonly status: number;
  readonly contentType: string;
  readonly body: Buffer;
  readonly cacheControl: string;
  /** Further response headers: no MIME sniffing, no framing by other sites (clickjacking). */
  readonly headers: Readonly<Record<string, string>>;
}

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  // A <meta> CSP cannot say frame-ancestors; these headers can.
  'x-frame-options': 'DENY',
  'content-security-policy': "frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
};

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** Vite names every file under assets/ after a hash of its content, so it never changes. */
const IMMUTABLE = 'public, max-age=31536000, immutable';
/** index.html and unhashed files: revalidate each time, so a new build shows at once. */
const REVALIDATE = 'no-cache';

/** Files larger than this are not served from here (the console's files are far smaller). */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

const NOT_BUILT = Buffer.from(
  '<!doctype html><meta charset="utf-8"><title>Shaddock</title>' +
    '<h1>The console is not built</h1><p>Run <code>npm run build:console</code> (or <code>npm run build</code>) and reload.</p>\n',
);

function text(status: number, message: string): ConsoleFile {
  return { status, contentType: 'text/plain; charset=utf-8', body: Buffer.from(`${message}\n`), cacheControl: 'no-store', headers: SECURITY_HEADERS };
}

function readRegularFile(path: string): Buffer | undefined {
  try {
    const st = statSync(path);
    if (!st.isFile() || st.size > MAX_FILE_BYTES) return undefined;
    return readFileSync(path);
  } catch {
    return undefined;
  }
}

/**
 * What to answer for a GET of `urlPath` (the request's path, query allowed) from the
 * console's files in `distDir`:
 *
 * - a file under `distDir`: that file; `assets/…` is cached for a year, the rest revalidated;
 * - `/` and any other path without a file extension: index.html (the console routes it);
 * - a path that escapes `distDir` (`..`, encoded or not), has a NUL byte or a backslash,
 *   or is badly percent-encoded: 400, never a file outside `distDir`;
 * - the console not built: 503 with a page that says how to build it;
 * - a missing file with an extension (a stale asset, `/favicon.ico`): `undefined`, so the
 *   server answers its usual 404.
 */
export function serveConsoleFile(distDir: string, urlPath: string): ConsoleFile | undefined {
  const end = urlPath.search(/[?#]/);
  const rawPath = end < 0 ? urlPath : urlPath.slice(0, end);
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    return text(400, 'bad percent-encoding in the path');
  }
  if (!path.startsWith('/') || path.includes('\0') || path.includes('\\')) return text(400, 'bad path');
  const segments = path.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.some((s) => s === '..')) return text(400, 'bad path');

  const root = distDir.replace(/[\\/]+$/, '');
  const index = (): ConsoleFile => {
    const body = readRegularFile(join(root, 'index.html'));
    if (body === undefined) return { status: 503, contentType: CONTENT_TYPES['.html']!, body: NOT_BUILT, cacheControl: 'no-store', headers: SECURITY_HEADERS };
    return { status: 200, contentType: CONTENT_TYPES['.html']!, body, cacheControl: REVALIDATE, headers: SECURITY_HEADERS };
  };
  if (segments.length === 0) return index();

  const file = join(root, ...segments);
  // Belt and braces: whatever the segments were, the file must be inside the folder.
  if (!file.startsWith(root + sep)) return text(400, 'bad path');
  const last = segments[segments.length - 1]!;
  const ext = extname(last).toLowerCase();
  // Dot-files (.gitignore, .vite/) are never part of what the console serves.
  if (!segments.some((s) => s.startsWith('.'))) {
    const body = readRegularFile(file);
    if (body !== undefined) {
      return {
        status: 200,
        contentType: CONTENT_TYPES[ext] ?? 'application/octet-stream',
        body,
        cacheControl: segments[0] === 'assets' && segments.length > 1 ? IMMUTABLE : REVALIDATE,
        headers: SECURITY_HEADERS,
      };
    }
  }
  // A console route (/apps/abc/clients) has no extension; a missing file does.
  if (ext === '' && segments[0] !== 'assets') return index();
  return undefined;
}
