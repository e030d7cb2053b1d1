/**
 * Which site serves a Host, and which route a path: pure lookups built once per config.
 *
 * Hosts, as nginx's server_name: an exact name first, then the longest `*.suffix` wildcard
 * (`*.example.com` matches `a.example.com` and `a.b.example.com`, not `example.com`), then the
 * default site: the one that lists `*`, else the first. Case-insensitive; the port and a
 * trailing dot are ignored.
 *
 * Paths: the longest matching prefix wins (nginx prefix locations). The path matched is the
 * decoded, normalised one (`/static/../admin` is `/admin`), so a route cannot be bypassed by
 * spelling.
 */

/** `Example.COM:8080` → `example.com`, `[::1]:80` → `[::1]`; '' when absent. */
export function hostName(header: string | undefined): string {
  if (header === undefined) return '';
  let h = header.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end < 0 ? h : h.slice(0, end + 1);
  }
  const colon = h.indexOf(':');
  if (colon >= 0) h = h.slice(0, colon);
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

/** Build a Host → value lookup. */
export function hostMatcher<T>(entries: ReadonlyArray<{ readonly hosts: readonly string[]; readonly value: T }>): (host: string) => T {
  if (entries.length === 0) throw new Error('hostMatcher needs at least one entry');
  const exact = new Map<string, T>();
  const wildcards: Array<{ suffix: string; value: T }> = [];
  let fallback: T | undefined;
  for (const { hosts, value } of entries) {
    for (const raw of hosts) {
      const h = raw.toLowerCase();
      if (h === '*') fallback ??= value;
      else if (h.startsWith('*.')) wildcards.push({ suffix: h.slice(1), value });
      else exact.set(hostName(h), value);
    }
  }
  wildcards.sort((a, b) => b.suffix.length - a.suffix.length);
  const def = fallback ?? entries[0]!.value;
  return (host) => {
    const e = exact.get(host);
    if (e !== undefined) return e;
    for (const w of wildcards) if (host.endsWith(w.suffix) && host.length > w.suffix.length) return w.value;
    return def;
  };
}

/** Build a path → value lookup by longest prefix; null when no prefix matches. */
export function prefixMatcher<T>(entries: ReadonlyArray<{ readonly prefix: string; readonly value: T }>): (path: string) => T | null {
  const sorted = [...entries].sort((a, b) => b.prefix.length - a.prefix.length);
  if (sorted.length === 1 && sorted[0]!.prefix === '/') {
    const only = sorted[0]!.value;
    return (path) => (path.startsWith('/') ? only : null);
  }
  return (path) => {
    for (const e of sorted) if (path.startsWith(e.prefix)) return e.value;
    return null;
  };
}
