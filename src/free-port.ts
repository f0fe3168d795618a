/** A TCP port nobody listens on right now on `hostname` (the OS picks it; the socket is closed at once). */
export function freePort(hostname = "127.0.0.1"): number {
  const s = Bun.listen({ hostname, port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}
