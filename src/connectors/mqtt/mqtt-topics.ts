// The MQTT topic scheme (docs/connectors.md). Everything of an app lives under
// `apps/{apikey}/`:
//
//   apps/{apikey}/all                broadcasts            (server → clients)
//   apps/{apikey}/clients/{clientId} to one client by id   (server → that client)
//   apps/{apikey}/tags/{tag}         to a tag              (server → its clients)
//   apps/{apikey}/presence           onAdd / onLeave       (server → managers)
//   apps/{apikey}/push               a push request        (managers → server)
//
// The hub decides who a message is for; the topic only tells the client why it got it.

/** What a SUBSCRIBE / UNSUBSCRIBE filter names, for one connection. */
export type FilterKind =
  | { readonly kind: 'all' }
  | { readonly kind: 'own' }
  | { readonly kind: 'tag'; readonly tag: string }
  | { readonly kind: 'presence' }
  | { readonly kind: 'forbidden'; readonly why: string };

export interface TopicOwner {
  readonly apikey: string;
  /** Undefined for managers. */
  readonly clientId: string | undefined;
}

const FORBIDDEN_WILDCARD = { kind: 'forbidden', why: 'wildcards are not allowed' } as const;
const FORBIDDEN_OTHER = { kind: 'forbidden', why: 'not a topic of this connection' } as const;
const ALL = { kind: 'all' } as const;
const OWN = { kind: 'own' } as const;
const PRESENCE = { kind: 'presence' } as const;

/**
 * Classifies a filter. Clients may subscribe their app's `all`, their own `clients/{id}`
 * and any `tags/{tag}`; managers their app's `presence`. Anything else — another app,
 * another client, wildcards (`+`, `#`) or shared subscriptions (`$share/…`) — is refused.
 */
export function classifyFilter(filter: string, owner: TopicOwner): FilterKind {
  // MQTT-4.7.1: `+` and `#` are wildcards anywhere in a filter; a tag cannot contain them.
  if (filter.includes('+') || filter.includes('#')) return FORBIDDEN_WILDCARD;
  const prefix = appPrefix(owner.apikey);
  if (!filter.startsWith(prefix)) return FORBIDDEN_OTHER;
  const rest = filter.slice(prefix.length);
  if (owner.clientId === undefined) return rest === 'presence' ? PRESENCE : FORBIDDEN_OTHER;
  if (rest === 'all') return ALL;
  if (rest === `clients/${owner.clientId}`) return OWN;
  if (rest.startsWith('tags/') && rest.length > 'tags/'.length) return { kind: 'tag', tag: rest.slice('tags/'.length) };
  return FORBIDDEN_OTHER;
}

export function appPrefix(apikey: string): string {
  return `apps/${apikey}/`;
}

export function allTopic(apikey: string): string {
  return `apps/${apikey}/all`;
}

export function clientTopic(apikey: string, clientId: string): string {
  return `apps/${apikey}/clients/${clientId}`;
}

export function tagTopic(apikey: string, tag: string): string {
  return `apps/${apikey}/tags/${tag}`;
}

export function presenceTopic(apikey: string): string {
  return `apps/${apikey}/presence`;
}

/** Where managers publish push requests. */
export function pushTopic(apikey: string): string {
  return `apps/${apikey}/push`;
}

/** An app's topics, the same for all its connections: built once and shared, not per connection. */
export interface AppTopics {
  readonly apikey: string;
  readonly all: string;
  readonly presence: string;
  readonly push: string;
}

/** Before CONNECT is accepted: no app yet. */
export const NO_APP: AppTopics = Object.freeze({ apikey: '', all: '', presence: '', push: '' });

/** Apps whose topics are kept at most; past that the cache starts over (apps come and go). */
const MAX_APPS_CACHED = 10_000;
const APP_TOPICS = new Map<string, AppTopics>();

export function appTopics(apikey: string): AppTopics {
  let topics = APP_TOPICS.get(apikey);
  if (topics === undefined) {
    if (APP_TOPICS.size >= MAX_APPS_CACHED) APP_TOPICS.clear();
    topics = Object.freeze({ apikey, all: allTopic(apikey), presence: presenceTopic(apikey), push: pushTopic(apikey) });
    APP_TOPICS.set(apikey, topics);
  }
  return topics;
}
