import type { Child } from "hono/jsx";
import { raw } from "hono/html";

const pages = [
  { href: "/ui", label: "Overview" },
  { href: "/ui/insights", label: "Insights" },
  { href: "/ui/sites", label: "Sites" },
  { href: "/ui/jobs", label: "Jobs" },
  { href: "/ui/queries", label: "Queries" },
  { href: "/ui/alerts", label: "Alerts" },
  { href: "/ui/google", label: "Google" },
] as const;

// htmx: no inline indicator styles and no eval, so the page runs under `default-src 'self'`.
const htmxConfig = JSON.stringify({ includeIndicatorStyles: false, allowEval: false, allowScriptTags: false, historyCacheSize: 0 });

/** The page frame: head, navigation, a notice line, the content. */
export function Layout(props: {
  title: string;
  active: string;
  notice?: string | null;
  error?: string | null;
  /** The key the pages were opened with (null: no key, e.g. loopback in protected mode). */
  who?: { name: string; scope: string } | null;
  children?: Child;
}) {
  return (
    <>
      {raw("<!doctype html>")}
      <html lang="en">
        <head>
          <meta charset="utf-8" />
          <meta name="viewport" content="width=device-width, initial-scale=1" />
          <meta name="htmx-config" content={htmxConfig} />
          <title>{`${props.title} · sitesync`}</title>
          <link rel="stylesheet" href="/ui/static/app.css" />
          <link rel="icon" href="/ui/static/favicon.svg" type="image/svg+xml" />
          <script src="/ui/static/htmx.min.js" defer></script>
          <script src="/ui/static/sse.js" defer></script>
        </head>
        <body hx-ext="sse">
          <a class="skip" href="#main">
            Skip to content
          </a>
          <header>
            <span class="brand">sitesync</span>
            <nav aria-label="Main">
              <ul>
                {pages.map((p) => (
                  <li>
                    <a href={p.href} aria-current={p.href === props.active ? "page" : undefined}>
                      {p.label}
                    </a>
                  </li>
                ))}
                <li>
                  <a href="/docs">API</a>
                </li>
              </ul>
            </nav>
            {props.who ? (
              <form method="post" action="/ui/logout" class="who">
                <span>
                  {props.who.name} ({props.who.scope})
                </span>{" "}
                <button type="submit">Sign out</button>
              </form>
            ) : null}
          </header>
          <main id="main">
            <h1>{props.title}</h1>
            {props.notice ? (
              <p class="notice" role="status">
                {props.notice}
              </p>
            ) : null}
            {props.error ? (
              <p class="error" role="alert">
                {props.error}
              </p>
            ) : null}
            {props.children}
          </main>
        </body>
      </html>
    </>
  );
}

/** A live region fed by server-sent events: `event` replaces its content; without JavaScript it stays as rendered. */
export function Live(props: { src: string; event: string; label: string; children?: Child }) {
  return (
    <div role="region" sse-connect={props.src} sse-swap={props.event} aria-live="polite" aria-label={props.label}>
      {props.children}
    </div>
  );
}

/** The `<option>`s of a site picker, the selected one marked. */
export function SiteOptions(props: { sites: { id: number; name: string }[]; selected: number | undefined }) {
  return (
    <>
      {props.sites.map((s) => (
        <option value={String(s.id)} selected={props.selected === s.id}>
          {s.name}
        </option>
      ))}
    </>
  );
}

/** A filter form's required site picker (`site_id`). */
export function SiteField(props: { sites: { id: number; name: string }[]; selected: number | undefined }) {
  return (
    <label>
      Site
      <select name="site_id" required>
        <SiteOptions sites={props.sites} selected={props.selected} />
      </select>
    </label>
  );
}

/** A filter form's From and To days (`start`, `end`). */
export function DayRangeFields(props: { start: string; end: string }) {
  return (
    <>
      <label>
        From
        <input type="date" name="start" value={props.start} />
      </label>
      <label>
        To
        <input type="date" name="end" value={props.end} />
      </label>
    </>
  );
}

/** The Clicks, Impressions, CTR and Position column heads of a metrics table (right-aligned numbers). */
export function MetricHeads() {
  return (
    <>
      {["Clicks", "Impressions", "CTR", "Position"].map((h) => (
        <th scope="col" class="n">
          {h}
        </th>
      ))}
    </>
  );
}
