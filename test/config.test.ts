import { describe, expect, test } from "bun:test";
import { availableParallelism } from "node:os";
import { ConfigError, childEnv, loadConfig, loadStressConfig, parseDatabaseUrl, settingsHandOff } from "../src/config.ts";

/** The ConfigError.fields a load throws (fails the test when it does not throw). */
function fieldsOf(argv: string[], env: Record<string, string> = {}): Record<string, string[]> {
  try {
    loadConfig(argv, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).fields;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify({ argv, env })}`);
}

describe("defaults", () => {
  test("an empty environment gives the documented defaults", () => {
    const c = loadConfig([], {});
    expect(c).toMatchObject({
      PORT: 8000,
      HOST: "0.0.0.0",
      WORKERS: availableParallelism(),
      SYNC_WORKERS: 1,
      DATABASE_URL: "./data/app.db",
      database: { dialect: "sqlite", path: "./data/app.db" },
      SHUTDOWN_TIMEOUT_MS: 10_000,
      SQLITE_BUSY_TIMEOUT_MS: 30_000,
      SQLITE_SYNCHRONOUS: "NORMAL",
      SQLITE_CACHE_SIZE: -64_000,
      SQLITE_MMAP_SIZE: 0,
      SQLITE_JOURNAL_SIZE_LIMIT: 67_108_864,
      SQLITE_TEMP_STORE: "MEMORY",
      WRITE_LOCK_TIMEOUT_MS: 30_000,
      CHECKPOINT_TRUNCATE_BYTES: 64 * 1024 * 1024,
      role: "standalone",
      supervised: false,
    });
  });

  test("empty strings count as unset", () => {
    const c = loadConfig([], { PORT: "", WORKERS: "", DATABASE_URL: "" });
    expect([c.PORT, c.WORKERS, c.DATABASE_URL]).toEqual([8000, availableParallelism(), "./data/app.db"]);
  });
});

describe("precedence", () => {
  const cases: { name: string; argv: string[]; env: Record<string, string>; expect: Record<string, unknown> }[] = [
    {
      name: "env sets",
      argv: [],
      env: { PORT: "9000", WORKERS: "3", HOST: "127.0.0.1" },
      expect: { PORT: 9000, WORKERS: 3, HOST: "127.0.0.1" },
    },
    {
      name: "flags set",
      argv: ["--port", "9100", "--workers", "2", "--host", "::1", "--sync-workers", "0"],
      env: {},
      expect: { PORT: 9100, WORKERS: 2, HOST: "::1", SYNC_WORKERS: 0 },
    },
    {
      name: "flags beat env",
      argv: ["--port=9200", "--workers=5", "--sync-workers=2"],
      env: { PORT: "9000", WORKERS: "3", SYNC_WORKERS: "7" },
      expect: { PORT: 9200, WORKERS: 5, SYNC_WORKERS: 2 },
    },
    {
      name: "--database-url beats DATABASE_URL",
      argv: ["--database-url", "/tmp/flag.db"],
      env: { DATABASE_URL: "/tmp/env.db" },
      expect: { DATABASE_URL: "/tmp/flag.db", database: { dialect: "sqlite", path: "/tmp/flag.db" } },
    },
    {
      name: "pragmas from env",
      argv: [],
      env: { SQLITE_BUSY_TIMEOUT_MS: "1234", SQLITE_SYNCHRONOUS: "FULL", SQLITE_CACHE_SIZE: "-2000", SQLITE_JOURNAL_SIZE_LIMIT: "-1" },
      expect: { SQLITE_BUSY_TIMEOUT_MS: 1234, SQLITE_SYNCHRONOUS: "FULL", SQLITE_CACHE_SIZE: -2000, SQLITE_JOURNAL_SIZE_LIMIT: -1 },
    },
    {
      name: "boolean spellings",
      argv: [],
      env: { REQUEST_LOG: "yes", SYNC_SCHEDULER: "0" },
      expect: { REQUEST_LOG: true, SYNC_SCHEDULER: false },
    },
    {
      name: "supervisor markers",
      argv: [],
      env: { SITESYNC_ROLE: "http", SITESYNC_SUPERVISED: "1" },
      expect: { role: "http", supervised: true },
    },
    { name: "hourly schedule off by default", argv: [], env: {}, expect: { SYNC_HOURLY_EVERY: 0 } },
    { name: "hourly schedule in hours", argv: [], env: { SYNC_HOURLY_EVERY: "6h" }, expect: { SYNC_HOURLY_EVERY: 21_600_000 } },
    { name: "hourly schedule in minutes", argv: [], env: { SYNC_HOURLY_EVERY: "30m" }, expect: { SYNC_HOURLY_EVERY: 1_800_000 } },
    { name: "hourly schedule off spelled out", argv: [], env: { SYNC_HOURLY_EVERY: "off" }, expect: { SYNC_HOURLY_EVERY: 0 } },
  ];
  for (const c of cases) {
    test(c.name, () => {
      expect(loadConfig(c.argv, c.env)).toMatchObject(c.expect);
    });
  }
});

describe("field errors", () => {
  const cases: { name: string; argv: string[]; env?: Record<string, string>; fields: Record<string, RegExp> }[] = [
    { name: "--workers abc", argv: ["--workers", "abc"], fields: { WORKERS: /number/i } },
    { name: "WORKERS=0", argv: [], env: { WORKERS: "0" }, fields: { WORKERS: />=\s*1/ } },
    { name: "fractional workers", argv: ["--workers", "1.5"], fields: { WORKERS: /int/i } },
    { name: "port out of range", argv: ["--port", "70000"], fields: { PORT: /65535/ } },
    { name: "bad synchronous", argv: [], env: { SQLITE_SYNCHRONOUS: "sometimes" }, fields: { SQLITE_SYNCHRONOUS: /NORMAL/ } },
    { name: "bad boolean", argv: [], env: { REQUEST_LOG: "maybe" }, fields: { REQUEST_LOG: /.+/ } },
    { name: "bad daily time", argv: [], env: { SYNC_DAILY_AT: "25:00" }, fields: { SYNC_DAILY_AT: /HH:MM/ } },
    { name: "bad hourly period", argv: [], env: { SYNC_HOURLY_EVERY: "hourly" }, fields: { SYNC_HOURLY_EVERY: /30m, 1h/ } },
    {
      name: "gsc source without any credentials",
      argv: [],
      env: { SYNC_SOURCE: "gsc", GSC_CREDENTIALS_FILE: "/nonexistent/credentials.json" },
      fields: { SYNC_SOURCE: /auth login/ },
    },
    { name: "unknown flag", argv: ["--wrokers", "2"], fields: { argv: /wrokers/ } },
    { name: "stray positional", argv: ["serve"], fields: { argv: /serve/ } },
    { name: "unknown process role", argv: [], env: { SITESYNC_ROLE: "boss" }, fields: { SITESYNC_ROLE: /standalone/ } },
    {
      name: "several at once",
      argv: ["--workers", "x", "--port=-1"],
      env: { SQLITE_TEMP_STORE: "DISK" },
      fields: { WORKERS: /.+/, PORT: /.+/, SQLITE_TEMP_STORE: /.+/ },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const fields = fieldsOf(c.argv, c.env);
      expect(Object.keys(fields).sort()).toEqual(Object.keys(c.fields).sort());
      for (const [k, re] of Object.entries(c.fields)) expect(fields[k]!.join("; ")).toMatch(re);
    });
  }

  test("the message names every field", () => {
    try {
      loadConfig(["--workers", "x"], { PORT: "nope" });
      throw new Error("no error");
    } catch (err) {
      expect((err as Error).message).toMatch(/^invalid configuration:\n/);
      expect((err as Error).message).toContain("  WORKERS: ");
      expect((err as Error).message).toContain("  PORT: ");
    }
  });
});

describe("DATABASE_URL forms", () => {
  const ok: [string, string][] = [
    ["./data/app.db", "./data/app.db"],
    ["/var/lib/sitesync/app.db", "/var/lib/sitesync/app.db"],
    ["relative.db", "relative.db"],
    ["file:data/app.db", "data/app.db"],
    ["file:/abs/app.db", "/abs/app.db"],
    ["file:///abs/app.db", "/abs/app.db"],
    ["file://localhost/abs/app.db", "/abs/app.db"],
    ["file:/abs/my%20app.db?mode=rwc&cache=private", "/abs/my app.db"],
    ["sqlite:///relative/app.db", "relative/app.db"],
    ["sqlite:///./data/app.db", "./data/app.db"],
    ["sqlite:////abs/app.db", "/abs/app.db"],
  ];
  for (const [url, path] of ok) {
    test(`${url} -> ${path}`, () => {
      expect(parseDatabaseUrl(url)).toEqual({ dialect: "sqlite", path });
      expect(loadConfig([], { DATABASE_URL: url }).database).toEqual({ dialect: "sqlite", path });
    });
  }

  test("postgres:// and postgresql:// URLs name a PostgreSQL server", () => {
    for (const url of ["postgres://user:pw@db/app", "postgresql://db:5433/app?sslmode=require"]) {
      expect(parseDatabaseUrl(url)).toEqual({ dialect: "postgres", url });
      expect(loadConfig([], { DATABASE_URL: url }).database).toEqual({ dialect: "postgres", url });
    }
  });

  const bad: [string, RegExp][] = [
    ["postgres://", /expected postgres:\/\/user:password@host:port\/database/],
    [":memory:", /in-memory/],
    ["file::memory:", /in-memory/],
    ["file:shared?mode=memory&cache=shared", /in-memory/],
    ["sqlite://", /in-memory/],
    ["sqlite:///:memory:", /in-memory/],
    ["sqlite://host/app.db", /sqlite:\/\/\//],
    ["file://otherhost/app.db", /local file/],
    ["file:", /empty/],
  ];
  for (const [url, message] of bad) {
    test(`${url} is rejected`, () => {
      const fields = fieldsOf([], { DATABASE_URL: url });
      expect(Object.keys(fields)).toEqual(["DATABASE_URL"]);
      expect(fields.DATABASE_URL!.join("; ")).toMatch(message);
    });
  }
});

describe("settings handed on to a supervised child (SITESYNC_SETTINGS)", () => {
  // A child's environment with the settings that transform (lists, durations, origins) and one left unset.
  const env = {
    PORT: "4100",
    SITESYNC_ROLE: "http",
    SITESYNC_SUPERVISED: "1",
    LOCAL_ADDRESSES: "10.0.0.0/8, ::1",
    CORS_ORIGINS: "https://App.example.com/",
    UI_SESSION_TTL: "2h",
    BACKUP_INTERVAL: "6h",
    REQUEST_LOG: "yes",
    DATABASE_URL: "postgres://u:pw@db:5432/app",
    WORKERS: "",
  };
  /** The hand-off for `env` with its settings changed by `edit`: shows whether a load took it or parsed its own. */
  const edited = (edit: (settings: Record<string, unknown>) => void) => {
    const h = JSON.parse(settingsHandOff(env)!);
    edit(h.settings);
    return JSON.stringify(h);
  };

  test("a child given the settings of its own environment gets the configuration it would parse", () => {
    const handed = loadConfig([], { ...env, SITESYNC_SETTINGS: settingsHandOff(env)! });
    expect(handed).toEqual(loadConfig([], env));
    expect(handed).toMatchObject({ PORT: 4100, role: "http", supervised: true, LOCAL_ADDRESSES: ["10.0.0.0/8", "::1"] });
    expect(handed).toMatchObject({ CORS_ORIGINS: ["https://app.example.com"], UI_SESSION_TTL: 7_200_000, BACKUP_INTERVAL: 21_600_000 });
    expect(handed.database).toEqual({ dialect: "postgres", url: "postgres://u:pw@db:5432/app" });
  });

  test("the handed settings are taken as they are (not parsed again)", () => {
    const c = loadConfig([], { ...env, SITESYNC_SETTINGS: edited((s) => (s.SHUTDOWN_TIMEOUT_MS = 1234)) });
    expect(c.SHUTDOWN_TIMEOUT_MS).toBe(1234);
  });

  test("a process whose environment or flags differ from the hand-off's parses its own", () => {
    const handOff = edited((s) => (s.SHUTDOWN_TIMEOUT_MS = 1234));
    for (const c of [
      loadConfig([], { ...env, PORT: "4200", SITESYNC_SETTINGS: handOff }),
      loadConfig([], { ...env, SHUTDOWN_TIMEOUT_MS: "10000", SITESYNC_SETTINGS: handOff }),
      loadConfig(["--port", "4200"], { ...env, SITESYNC_SETTINGS: handOff }),
    ])
      expect(c.SHUTDOWN_TIMEOUT_MS).toBe(10_000);
    expect(() => loadConfig([], { ...env, PORT: "x", SITESYNC_SETTINGS: handOff })).toThrow(ConfigError);
    // Unreadable, or made by other code (a supervisor upgraded under): parsed as if absent.
    expect(loadConfig([], { ...env, SITESYNC_SETTINGS: "{" }).PORT).toBe(4100);
    const otherCode = JSON.parse(handOff);
    otherCode.version = "1";
    expect(loadConfig([], { ...env, SITESYNC_SETTINGS: JSON.stringify(otherCode) }).SHUTDOWN_TIMEOUT_MS).toBe(10_000);
  });

  test("childEnv hands on the settings of the environment it makes; none when that does not parse", () => {
    const child = childEnv({ PORT: "4300", SITESYNC_ROLE: "sync" });
    expect(loadConfig([], child)).toEqual(loadConfig([], { ...child, SITESYNC_SETTINGS: "" }));
    expect(JSON.parse(child.SITESYNC_SETTINGS!).settings).toMatchObject({ PORT: 4300, SITESYNC_ROLE: "sync" });
    expect(childEnv({ PORT: "x" }).SITESYNC_SETTINGS).toBeUndefined();
  });
});

describe("loadStressConfig", () => {
  test("defaults, on top of the usual configuration", () => {
    const c = loadStressConfig([], { PORT: "1234" });
    expect(c.PORT).toBe(1234);
    expect(c.stress).toEqual({ processes: 8, seconds: 10, readRatio: 0.8, clients: 8, database: null, child: false });
  });

  test("flags beat STRESS_* env; --child is a switch", () => {
    const c = loadStressConfig(
      ["--processes", "3", "--seconds=2", "--read-ratio", "0.5", "--clients", "4", "--database", "sqlite:////abs/s.db", "--child"],
      { STRESS_PROCESSES: "9", STRESS_CLIENTS: "7" },
    );
    expect(c.stress).toEqual({
      processes: 3,
      seconds: 2,
      readRatio: 0.5,
      clients: 4,
      database: { dialect: "sqlite", path: "/abs/s.db" },
      child: true,
    });
    expect(loadStressConfig([], { STRESS_PROCESSES: "9", STRESS_SECONDS: "" }).stress).toMatchObject({ processes: 9, seconds: 10 });
  });

  test("field errors name the setting or argv", () => {
    const fields = (argv: string[], env: Record<string, string> = {}) => {
      try {
        loadStressConfig(argv, env);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return Object.keys((err as ConfigError).fields);
      }
      throw new Error("no error");
    };
    expect(fields(["--processes", "0"])).toEqual(["STRESS_PROCESSES"]);
    expect(fields([], { STRESS_READ_RATIO: "2" })).toEqual(["STRESS_READ_RATIO"]);
    expect(fields(["--port", "1"])).toEqual(["argv"]);
    expect(fields([], { STRESS_DATABASE: ":memory:" })).toEqual(["DATABASE_URL"]);
  });
});
