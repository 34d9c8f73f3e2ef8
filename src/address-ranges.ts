import { BlockList, isIP } from 'node:net';

/**
 * Lists of addresses and CIDR ranges in settings (`limitsExemptIps`): `127.0.0.1`,
 * `10.0.0.0/8`, `::1`, `fd00::/8`. A bare address is a range of one.
 */
export interface AddressRange {
  readonly address: string;
  readonly prefix: number;
  readonly family: 'ipv4' | 'ipv6';
}

/** One entry of an address list, or a sentence saying what is wrong with it. */
export function parseAddressRange(entry: string): AddressRange | string {
  const text = entry.trim();
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return `"${entry}" is not an IP address or CIDR range (like 10.0.0.0/8 or fd00::/8)`;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  const max = version === 4 ? 32 : 128;
  if (slash < 0) return { address, prefix: max, family };
  const bits = text.slice(slash + 1);
  const prefix = /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return `"${entry}": the prefix length must be 0 to ${max}`;
  return { address, prefix, family };
}

const MAPPED_IPV4 = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i;

/** Matches addresses against a list of ranges (net.BlockList). An IPv4-mapped IPv6 address matches as its IPv4 address. */
export class AddressRanges {
  readonly #list = new BlockList();
  readonly size: number;

  /** @throws Error naming the first entry that is not an address or range. */
  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const range = parseAddressRange(entry);
      if (typeof range === 'string') throw new Error(range);
      this.#list.addSubnet(range.address, range.prefix, range.family);
    }
    this.size = entries.length;
  }

  has(address: string): boolean {
    if (this.size === 0) return false;
    const mapped = MAPPED_IPV4.exec(address);
    const a = mapped ? mapped[1]! : address.split('%')[0]!;
    const version = isIP(a);
    if (version === 0) return false;
    return this.#list.check(a, version === 4 ? 'ipv4' : 'ipv6');
  }
}
