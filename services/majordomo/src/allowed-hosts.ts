/**
 * The Host headers the API answers (against DNS rebinding: a page on evil.example whose name
 * is made to resolve to 127.0.0.1 sends `Host: evil.example`). Loopback names and the bind
 * host on the API's port, plus CP_HTTP_ALLOWED_HOSTS: `name` (on the API's port) or `name:port`.
 */
export function allowedHosts(
  bindHost: string,
  port: number,
  extra: readonly string[],
): Set<string> {
  const out = new Set<string>();
  const add = (entry: string) => {
    let e = entry.trim().toLowerCase();
    if (!e) return;
    // A bare IPv6 address (more than one ':') is bracketed, as it appears in a Host header.
    if (!e.startsWith('[') && e.split(':').length > 2) e = `[${e}]`;
    if (/:\d+$/.test(e)) out.add(e);
    else {
      out.add(`${e}:${port}`);
      if (port === 80) out.add(e);
    }
  };
  for (const h of ['127.0.0.1', 'localhost', '::1', bindHost, ...extra]) add(h);
  return out;
}

export function hostAllowed(allowed: ReadonlySet<string>, header: string | undefined): boolean {
  return header !== undefined && allowed.has(header.trim().toLowerCase());
}
