import { num } from "./format.ts";

const W = 720;
const H = 160;
const PAD = { left: 56, right: 12, top: 12, bottom: 24 };

/** Axis ticks from 0 to a round top (1, 2 or 5 times a power of ten), whole numbers when the values are, at most 5. */
export function axisTicks(max: number, integers = true): number[] {
  if (!(max > 0)) return [0];
  const rough = max / 4;
  const pow = 10 ** Math.floor(Math.log10(rough));
  let step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= rough) ?? 10 * pow;
  if (integers) step = Math.max(1, Math.ceil(step));
  const ticks: number[] = [];
  for (let v = 0; v < max + step; v += step) {
    ticks.push(v);
    if (v >= max) break;
  }
  return ticks;
}

/**
 * Runs of consecutive days that have a value: a day without one (never synced) breaks the line, so a
 * gap is drawn as a gap, never as a fall to zero.
 */
export function segments(days: string[], values: Map<string, number>): { i: number; v: number }[][] {
  const out: { i: number; v: number }[][] = [];
  let run: { i: number; v: number }[] = [];
  days.forEach((d, i) => {
    const v = values.get(d);
    if (v === undefined) {
      if (run.length) out.push(run);
      run = [];
    } else run.push({ i, v });
  });
  if (run.length) out.push(run);
  return out;
}

/**
 * A line chart of one series over days, drawn as inline SVG on the server (no script). `values` holds
 * only the days that have data: the others are gaps. With no data at all it says so instead of an axis.
 */
export function LineChart(props: {
  title: string;
  series: string;
  days: string[];
  values: Map<string, number>;
  /** Digits after the point on the axis (default 0: whole numbers). */
  digits?: number;
  /** Lower is better (position): the axis is drawn upside down. */
  inverted?: boolean;
}) {
  const known = props.days.filter((d) => props.values.has(d)).map((d) => props.values.get(d)!);
  const sum = known.reduce((a, b) => a + b, 0);
  const first = props.days[0];
  const last = props.days.at(-1);
  if (known.length === 0) {
    return (
      <figure class="chart empty" data-series={props.series}>
        <p class="chart-empty">
          No {props.title.toLowerCase()} stored from {first} to {last}: sync these days to see the chart.
        </p>
      </figure>
    );
  }
  const digits = props.digits ?? 0;
  const ticks = axisTicks(Math.max(...known), digits === 0);
  const top = ticks.at(-1)!;
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const x = (i: number) => PAD.left + (props.days.length <= 1 ? innerW / 2 : (i * innerW) / (props.days.length - 1));
  const y = (v: number) => {
    const f = top === 0 ? 0 : v / top;
    return PAD.top + (props.inverted ? f * innerH : innerH - f * innerH);
  };
  const runs = segments(props.days, props.values);
  const gaps = props.days.length - known.length;
  const total = props.inverted ? "" : ` (total ${num(sum, digits)})`;
  const summary =
    `${props.title}: ${known.length} of ${props.days.length} days with data from ${first} to ${last}` +
    (props.inverted ? "" : `, ${num(sum, digits)} in total`) +
    (gaps > 0 ? `; ${gaps} days without data are left blank` : "");
  return (
    <figure class="chart">
      <svg
        viewBox={`0 0 ${W} ${H}`}
        role="img"
        aria-label={summary}
        class={`series-${props.series}`}
        data-series={props.series}
        data-total={sum}
        data-days={known.length}
      >
        <title>{summary}</title>
        {ticks.map((t) => (
          <g>
            <line class="gridline" x1={PAD.left} x2={W - PAD.right} y1={y(t)} y2={y(t)} />
            <text class="axis" data-tick={t} x={PAD.left - 6} y={y(t) + 4} text-anchor="end">
              {num(t, digits)}
            </text>
          </g>
        ))}
        <text class="axis" x={PAD.left} y={H - 6}>
          {first}
        </text>
        <text class="axis" x={W - PAD.right} y={H - 6} text-anchor="end">
          {last}
        </text>
        {runs.map((run) =>
          run.length === 1 ? (
            <circle class="dot" cx={x(run[0]!.i).toFixed(1)} cy={y(run[0]!.v).toFixed(1)} r="2.5" />
          ) : (
            <polyline class="line" points={run.map((p) => `${x(p.i).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ")} />
          ),
        )}
      </svg>
      <figcaption>
        {props.title} per day{total}
        {gaps > 0 ? <span class="muted"> · blank where no data is stored</span> : null}
      </figcaption>
    </figure>
  );
}
