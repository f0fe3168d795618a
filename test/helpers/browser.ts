import { expect } from "bun:test";
import { existsSync } from "node:fs";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

// The browser tests' shared set-up: Debian's chromium through playwright-core, contexts that abort (and
// record) every request not for the server under test, pages whose console errors are collected.

/**
 * Debian's chromium, as its headless shell (`apt-get install -y chromium-headless-shell`: the same browser
 * build without the desktop chrome). Measured on the dashboard's pages (10 pages, /docs among them, load
 * ~44): 2.1-2.4 s of CPU for the browser's processes against 10.2 s for `/usr/bin/chromium`.
 */
export const CHROMIUM = "/usr/bin/chromium-headless-shell";

/**
 * Whether chromium is here to run `file`'s tests. Without it they are skipped with a printed reason, except
 * under REQUIRE_BROWSER=1 (set by .ci/run), where a missing browser is an error: there they must run.
 */
export function haveChromium(file: string): boolean {
  if (existsSync(CHROMIUM)) return true;
  if (process.env.REQUIRE_BROWSER === "1") throw new Error(`${CHROMIUM} is missing and REQUIRE_BROWSER=1`);
  console.warn(`${file} tests skipped: ${CHROMIUM} not found (apt-get install -y chromium-headless-shell)`);
  return false;
}

/**
 * Starts chromium headless (no sandbox: tests run as root in containers). Flags that turn off the GPU process,
 * extensions, background networking and the like were measured too: no difference for the headless shell
 * (2.0-2.5 s of CPU either way over 10 pages, 3 alternated pairs at load 47-70), so none are added. Tried again on
 * 2026-12-07 over the 9-page tour in one page (3 alternated rounds, load 15-24, chromium's CPU against the same run
 * without): `--disable-gpu` 0.99x, `--disable-features=PaintHolding,BackForwardCache` 1.00x, `--js-flags=--jitless`
 * 0.97x, `--in-process-gpu` 1.04x, `--single-process` 0.95x, an 800x600 viewport 1.02x: the cost is the pages
 * themselves (0.1-0.35 s a navigation, the site page with its calendar the most), and a new page's renderer.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
}

/**
 * A context whose requests reach only `serverUrl`'s host: every other URL is pushed to `offsite` (the tests fail on
 * it) and sent to a proxy that is not there (127.0.0.1:9, nothing listens), so it fails in chromium without leaving
 * this machine; loopback addresses other than the server's go direct, recorded all the same. Recorded from the
 * context's request events, not by intercepting every request (a route): interception is a round trip to this
 * process per request and turns off chromium's HTTP cache. Over the dashboard's 9-page tour (one page, 4 alternated
 * rounds, load 16-18): chromium's CPU 1.77-2.51 s with the route, 1.53-2.17 s with this; the client's 0.29 -> 0.18 s.
 */
export async function localOnlyContext(
  browser: Browser,
  serverUrl: string,
  offsite: string[],
  opts: { javaScriptEnabled?: boolean; viewport?: { width: number; height: number } } = {},
): Promise<BrowserContext> {
  const own = new URL(serverUrl);
  const ctx = await browser.newContext({
    javaScriptEnabled: opts.javaScriptEnabled ?? true,
    viewport: opts.viewport ?? { width: 1280, height: 900 },
    proxy: { server: "http://127.0.0.1:9", bypass: own.hostname },
  });
  ctx.on("request", (request) => {
    const url = new URL(request.url());
    if (url.host !== own.host) offsite.push(url.href);
  });
  return ctx;
}

/** Opens `serverUrl + path` in a new page of `ctx`, expects a 200, and pushes the page's console errors to `errors`. */
export async function openPage(ctx: BrowserContext, serverUrl: string, path: string, errors: string[]): Promise<Page> {
  const tab = await newTab(ctx, serverUrl, errors);
  return tab.open(path);
}

/** One page of a context, navigated from path to path: `open` goes to `serverUrl + path` and expects a 200. */
export type Tab = { page: Page; open(path: string): Promise<Page> };

/**
 * A page reused for every path a file opens: each new page starts a renderer process of its own, each navigation
 * of the same page stays in its renderer. Over the dashboard's 9-page tour (load 16-18, 3 alternated rounds):
 * chromium's CPU 3.41-3.71 s with a page per path, 1.75-1.85 s with one page. Its console errors (and uncaught
 * exceptions) go to `errors`, labelled with the path opened last.
 */
export async function newTab(ctx: BrowserContext, serverUrl: string, errors: string[]): Promise<Tab> {
  const page = await ctx.newPage();
  let at = "";
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`${at}: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`${at}: ${e.message}`));
  return {
    page,
    async open(path) {
      at = path;
      const res = await page.goto(serverUrl + path);
      expect(res?.status()).toBe(200);
      return page;
    },
  };
}
