import { addDays, dayRange } from "../sync/dates.ts";

export type DayState = "final" | "provisional" | "missing" | "failed";

/**
 * The state of each day: final (marked synced), provisional (rows stored, not final yet), failed (no rows,
 * and a failed task covered it), missing (none of these).
 */
export function dayStates(
  days: string[],
  finalDays: Set<string>,
  rowsByDay: Map<string, number>,
  failedRanges: { start: string; end: string }[],
): Map<string, DayState> {
  const out = new Map<string, DayState>();
  for (const d of days) {
    if (finalDays.has(d)) out.set(d, "final");
    else if ((rowsByDay.get(d) ?? 0) > 0) out.set(d, "provisional");
    else if (failedRanges.some((r) => r.start <= d && d <= r.end)) out.set(d, "failed");
    else out.set(d, "missing");
  }
  return out;
}

const weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/** Monday of the week of `day`. */
function monday(day: string): string {
  const dow = (new Date(`${day}T00:00:00Z`).getUTCDay() + 6) % 7;
  return addDays(day, -dow);
}

/** The coverage calendar: one row per week, one cell per day, coloured by state (with text for screen readers). */
export function CoverageCalendar(props: { start: string; end: string; states: Map<string, DayState>; rowsByDay: Map<string, number> }) {
  const weeks: string[][] = [];
  for (let w = monday(props.start); w <= props.end; w = addDays(w, 7)) weeks.push(dayRange(w, addDays(w, 6)));
  const counts = { final: 0, provisional: 0, missing: 0, failed: 0 };
  for (const s of props.states.values()) counts[s]++;
  return (
    <figure class="calendar">
      <table aria-describedby="calendar-legend">
        <caption>
          Coverage {props.start} to {props.end}: {counts.final} final, {counts.provisional} provisional, {counts.failed} failed,{" "}
          {counts.missing} missing
        </caption>
        <thead>
          <tr>
            <th scope="col">Week of</th>
            {weekdays.map((d) => (
              <th scope="col">{d}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {weeks.map((week) => (
            <tr>
              <th scope="row">{week[0]!.slice(5)}</th>
              {week.map((d) => {
                const state = props.states.get(d);
                if (!state) return <td class="day out" aria-hidden="true"></td>;
                const rows = props.rowsByDay.get(d) ?? 0;
                const label = `${d}: ${state}${rows > 0 ? `, ${rows} rows` : ""}`;
                return (
                  <td class={`day ${state}`} data-date={d} data-state={state} title={label}>
                    <span class="sr">{label}</span>
                    <span aria-hidden="true">{Number(d.slice(8))}</span>
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
      <figcaption id="calendar-legend" class="legend">
        <span class="day final">final</span> <span class="day provisional">provisional (may still change)</span>{" "}
        <span class="day failed">failed</span> <span class="day missing">missing</span>
      </figcaption>
    </figure>
  );
}
