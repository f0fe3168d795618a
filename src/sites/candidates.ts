// Pure (no database): the CLI resolves a site by these too, without loading the database layer.

/** Lower-cases the host of a bare host, a `sc-domain:` property or a URL (never a URL's path). */
function lowerHost(s: string): string {
  const m = /^((?:[a-zA-Z][a-zA-Z0-9+.-]*:(?:\/\/)?)?)([^/]*)(.*)$/.exec(s);
  return m ? m[1]!.toLowerCase() + m[2]!.toLowerCase() + m[3]! : s;
}

/**
 * The property strings a hostname may stand for, in the order they are tried: the original's four
 * steps (the value as sent; `sc-domain:` + it; with every `http(s)://` removed and trailing `/`
 * stripped; `sc-domain:` + that), then the URL-prefix properties `https://host/` and
 * `https://www.host/`. Hosts are compared lower-cased (stored domains are normalized that way).
 */
export function hostnameCandidates(hostname: string): string[] {
  const h = lowerHost(hostname.trim());
  const out: string[] = [h];
  if (!h.startsWith("sc-domain:")) out.push(`sc-domain:${h}`);
  let bare = h.replace(/^sc-domain:/, "");
  if (/^https?:\/\//.test(h)) {
    const c = h.replaceAll("https://", "").replaceAll("http://", "").replace(/\/+$/, "");
    out.push(c, `sc-domain:${c}`);
    bare = c;
  }
  // A URL-prefix property is scheme + host + `/`: only a bare host (no path) can name one here.
  bare = bare.replace(/\/+$/, "");
  if (bare && !bare.includes("/")) {
    out.push(`https://${bare}/`);
    if (!bare.startsWith("www.")) out.push(`https://www.${bare}/`);
  }
  return [...new Set(out)];
}
