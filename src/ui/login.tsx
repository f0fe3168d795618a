import { Layout } from "./layout.tsx";

/** The key form, shown once API keys exist: the key goes into an HttpOnly cookie, never into a script. */
export function LoginPage(props: { next: string; error: string | null }) {
  return (
    <Layout title="Sign in" active="" error={props.error}>
      <p>
        This server has API keys: sign in with one. A read key shows everything; changes need a write key; processes and the database report
        need an admin key.
      </p>
      <form method="post" action="/ui/login" class="stack">
        <input type="hidden" name="next" value={props.next} />
        <label>
          API key
          <input type="password" name="key" required autocomplete="off" placeholder="ssk_…" />
        </label>
        <button type="submit">Sign in</button>
      </form>
      <p class="muted">
        Create one on the server with <code>bun run keys create --name you --scope read</code>.
      </p>
    </Layout>
  );
}
