import { describe, expect, test } from "bun:test";
import { attachmentHeader, csvLine, formatFixed, roundHalfEven, safeName } from "../src/analytics/format.ts";

// Python's rounding and %-formatting (reference §0.7) and the CSV/filename helpers.

describe("formatFixed / roundHalfEven = Python's '%.Nf' and round()", () => {
  const cases: [x: number, digits: number, python: string][] = [
    [2.5, 0, "2"], // round(2.5) = 2
    [3.5, 0, "4"],
    [0.5, 0, "0"],
    [1.5, 0, "2"],
    [4.499999999999999, 0, "4"],
    [0.0625, 3, "0.062"], // an exact binary tie: half to even (toFixed says 0.063)
    [0.1875, 3, "0.188"],
    [0.125, 2, "0.12"],
    [1.005, 2, "1.00"], // 1.005 is 1.00499999999999989... in binary
    [2.675, 2, "2.67"],
    [3.38, 1, "3.4"],
    [3.25, 1, "3.2"],
    [10, 4, "10.0000"],
    [8.000000000000002, 3, "8.000"],
    [0.06666666666666667, 4, "0.0667"],
    [-2.5, 0, "-2"],
    [-1.25, 1, "-1.2"],
    [123456.5, 0, "123456"],
    [1e-20, 2, "0.00"],
  ];
  for (const [x, digits, python] of cases) {
    test(`'%.${digits}f' % ${x} == '${python}'`, () => {
      expect(formatFixed(x, digits)).toBe(python);
      expect(roundHalfEven(x, digits)).toBe(Number(python));
    });
  }

  test("whole numbers: the fast path agrees with the exact expansion (ties, negatives, huge, tiny)", () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const xs = [0, -0, 0.5, -0.5, 1.5, -1.5, 2 ** 52 + 1, -(2 ** 53), 2 ** -60, -(2 ** -60), 0.49999999999999994];
    for (let i = 0; i < 20_000; i++) {
      const scale = 10 ** Math.floor(random() * 8);
      xs.push((random() - 0.5) * scale, Math.round((random() - 0.5) * scale * 2) / 2);
    }
    for (const x of xs) expect(roundHalfEven(x)).toBe(Number(formatFixed(x, 0)));
  });
});

describe("CSV and download names", () => {
  test("fields quoted only when needed, quotes doubled, CRLF", () => {
    expect(csvLine(["a", 1, 'say "hi"', "x,y", "line\nbreak", "cr\rx", "", null])).toBe(
      'a,1,"say ""hi""","x,y","line\nbreak","cr\rx",,\r\n',
    );
  });

  test("safe name keeps letters and digits of any script, - and _", () => {
    expect(safeName("example.com")).toBe("examplecom");
    expect(safeName("Bar 中文-x_y!")).toBe("Bar中文-x_y");
  });

  test("Content-Disposition has an ASCII filename and an exact filename* (RFC 6266 / 5987)", () => {
    expect(attachmentHeader("report_中文 (1)'s.csv")).toBe(
      `attachment; filename="report_ (1)'s.csv"; filename*=UTF-8''report_%E4%B8%AD%E6%96%87%20%281%29%27s.csv`,
    );
    expect(attachmentHeader('a"b\\c.csv')).toBe(`attachment; filename="a_b_c.csv"; filename*=UTF-8''a%22b%5Cc.csv`);
  });
});
