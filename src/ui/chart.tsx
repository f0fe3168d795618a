import { num } from "./format.ts";

const W = 720;
const H = 160;
const PAD = { left: 56, right: 12, top: 12, bottom: 24 };

/** A line chart of one series over days, drawn as inline SVG on the server (no script). */
export function LineChart(props: { title: string; series: string; days: string[]; values: Map<string, number> }) {
  const vals = props.days.map((d) => props.values.get(d) ?? 0);
  const max = Math.max(1, ...vals);
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const x = (i: number) => PAD.left + (props.days.length <= 1 ? innerW / 2 : (i * innerW) / (props.days.length - 1));
  const y = (v: number) => PAD.top + innerH - (v / max) * innerH;
  const points = vals.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const sum = vals.reduce((a, b) => a + b, 0);
  const summary = `${props.title}: ${num(sum)} in total from ${props.days[0]} to ${props.days.at(-1)}, at most ${num(max)} a day`;
  return (
    <figure class="chart">
      <svg
        viewBox={`0 0 ${W} ${H}`}
        role="img"
        aria-label={summary}
        class={`series-${props.series}`}
        data-series={props.series}
        data-total={sum}
      >
        <title>{summary}</title>
        {[0, 0.5, 1].map((f) => (
          <g>
            <line class="grid" x1={PAD.left} x2={W - PAD.right} y1={y(max * f)} y2={y(max * f)} />
            <text class="axis" x={PAD.left - 6} y={y(max * f) + 4} text-anchor="end">
              {num(Math.round(max * f))}
            </text>
          </g>
        ))}
        <text class="axis" x={PAD.left} y={H - 6}>
          {props.days[0]}
        </text>
        <text class="axis" x={W - PAD.right} y={H - 6} text-anchor="end">
          {props.days.at(-1)}
        </text>
        <polyline class="line" points={points} />
      </svg>
      <figcaption>
        {props.title} per day (total {num(sum)})
      </figcaption>
    </figure>
  );
}
