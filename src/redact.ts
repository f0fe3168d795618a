// Secrets never leave through text: an upstream error that echoes a token (Google's token endpoint, a proxy,
// a misbehaving API) would otherwise land in a job's error (readable with a read key), diagnostics and logs.
// Two nets: the secrets this process holds (registered where they are loaded or received) and the shapes
// of credentials (Google access and refresh tokens, our API keys, Bearer values, JSON/form fields named
// like secrets).

const known = new Set<string>();

/** Remembers a secret this process holds (a token, a client secret) so `redact` blanks it wherever it appears. */
export function registerSecret(value: string | null | undefined): void {
  // Short values would blank ordinary words; real secrets are long.
  if (value && value.length >= 12) known.add(value);
}

const REDACTED = "[redacted]";
const shapes: [RegExp, string][] = [
  // Google OAuth access tokens and refresh tokens.
  [/\bya29\.[\w.-]+/g, REDACTED],
  [/\b1\/\/[\w-]{20,}/g, REDACTED],
  // sitesync API keys (ssk_<prefix>_<secret>): the public prefix may stay, the secret part goes.
  [/\b(ssk_[0-9a-f]{12})_[\w-]+/g, `$1_${REDACTED}`],
  [/\b(Bearer\s+)[\w.~+/-]+=*/gi, `$1${REDACTED}`],
  // "access_token": "…", refresh_token=…, client_secret: …, private_key …
  [
    /(["']?(?:access_token|refresh_token|id_token|client_secret|private_key|api_key|apikey|password)["']?\s*[:=]\s*["']?)([^"'&,\s}]+)/gi,
    `$1${REDACTED}`,
  ],
  // A PEM private key (service-account files).
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g, REDACTED],
];

/** The text with every registered secret and every credential-shaped value replaced by `[redacted]`. */
export function redact(text: string): string {
  let out = text;
  for (const s of known) if (out.includes(s)) out = out.split(s).join(REDACTED);
  for (const [re, to] of shapes) out = out.replace(re, to);
  return out;
}
