// Branded identifiers: an apikey cannot be passed where a clientId belongs.
export type ApiKey = string & { readonly __brand: 'ApiKey' };
export type ClientId = string & { readonly __brand: 'ClientId' };
/** Increases within its app; 1 is the first message of an app. */
export type MessageId = number & { readonly __brand: 'MessageId' };

export const asApiKey = (s: string): ApiKey => s as ApiKey;
export const asClientId = (s: string): ClientId => s as ClientId;
export const asMessageId = (n: number): MessageId => n as MessageId;
