import { expect, test } from "bun:test";
import { addressMatcher, isLoopbackName } from "../src/auth/net.ts";

// Who counts as local, and which Host names count as loopback names.

test("addressMatcher: IPv4 CIDRs, exact addresses, IPv4-mapped IPv6", () => {
  const cases: [string[], string, boolean][] = [
    [["127.0.0.0/8", "::1"], "127.0.0.1", true],
    [["127.0.0.0/8", "::1"], "127.255.3.4", true],
    [["127.0.0.0/8", "::1"], "::ffff:127.0.0.2", true],
    [["127.0.0.0/8", "::1"], "::1", true],
    [["127.0.0.0/8", "::1"], "128.0.0.1", false],
    [["127.0.0.0/8", "::1"], "10.0.0.1", false],
    [["127.0.0.0/8", "::1"], "::2", false],
    [["127.0.0.1", "::1"], "127.0.0.2", false],
    [["127.0.0.1", "::1"], "::FFFF:127.0.0.1", true],
    [["10.1.0.0/16"], "10.1.255.255", true],
    [["10.1.0.0/16"], "10.2.0.0", false],
    [[], "127.0.0.1", false],
  ];
  for (const [list, addr, want] of cases) expect({ list, addr, local: addressMatcher(list)(addr) }).toEqual({ list, addr, local: want });
});

test("isLoopbackName", () => {
  for (const h of ["localhost", "app.localhost", "127.0.0.1", "127.1.2.3", "[::1]"]) expect(isLoopbackName(h)).toBe(true);
  for (const h of ["evil.example", "localhost.evil.example", "127.0.0.1.evil.example", "0.0.0.0", "[::2]"])
    expect(isLoopbackName(h)).toBe(false);
});
