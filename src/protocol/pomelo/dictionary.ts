/**
 * Route dictionary (route compression, docs/pomelo-protocol.md §8): route <-> 16-bit code, built the way
 * pomelo 2.2.7's dictionary component builds it so that codes and `dictVersion` match
 * (vector `hs-reply-demo-app`).
 */
import { createHash } from 'node:crypto';

export interface RouteDictionary {
  /** route -> code. A null-prototype object: `routeToCode['toString']` is undefined. */
  readonly routeToCode: Readonly<Record<string, number>>;
  /** String(code) -> route. A null-prototype object. */
  readonly codeToRoute: Readonly<Record<string, string>>;
  /** base64(md5(JSON.stringify(routeToCode))): a cache token clients send back (docs/pomelo-protocol.md §4.3). */
  readonly version: string;
}

/** Largest code a compressed route can carry (2 bytes on the wire). */
export const MAX_ROUTE_CODE = 0xffff;

/**
 * Spec §8.1: handler routes sorted with JavaScript's default sort (UTF-16 code units)
 * numbered 1..n, then `extraRoutes` (config/dictionary.json) in order. A repeated
 * route takes the later code in `routeToCode`; both codes stay in `codeToRoute`.
 * @throws RangeError when there are more than 65535 routes (codes must fit 2 bytes).
 */
export function buildRouteDictionary(
  handlerRoutes: readonly string[],
  extraRoutes: readonly string[] = [],
): RouteDictionary {
  const routes = [...handlerRoutes].sort().concat(extraRoutes);
  if (routes.length > MAX_ROUTE_CODE) {
    throw new RangeError(`${routes.length} routes do not fit 16-bit route codes (max ${MAX_ROUTE_CODE})`);
  }
  // Insertion order gives the JSON the reference hashes; null prototypes keep lookups
  // of names like "constructor" from finding Object.prototype members.
  const routeToCode = Object.create(null) as Record<string, number>;
  const codeToRoute = Object.create(null) as Record<string, string>;
  routes.forEach((route, i) => {
    const code = i + 1;
    routeToCode[route] = code;
    codeToRoute[String(code)] = route;
  });
  const version = createHash('md5').update(JSON.stringify(routeToCode), 'utf8').digest('base64');
  return Object.freeze({ routeToCode: Object.freeze(routeToCode), codeToRoute: Object.freeze(codeToRoute), version });
}
