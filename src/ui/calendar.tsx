import type { CompletenessDay, CompletenessMark } from "../sync/completeness.ts";
import { addDays, dayRange } from "../sync/dates.ts";
import { num } from "./format.ts";

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

/** Each completeness mark's symbol in a day's cell and its words in the legend. */
const marks: Record<CompletenessMark, { symbol: string; words: string }> = {
  complete: { symbol: "✓", words: "complete: every grain fetched, no row cap hit, final" },
  truncated: { symbol: "!", words: "truncated: Google's 50,000-row cap cut the page or query rows (totals still exact)" },
  provisional: { symbol: "~", words: "provisional: Search Console may still revise the day" },
  derived: { symbol: "Σ", words: "derived: totals summed from the named queries (under-counted; fetched again on the next sync)" },
};

/** One search type's completeness in words (a cell's tooltip). */
function completenessWords(t: CompletenessDay["types"][number]): string {
  const parts = [`${t.search_type} ${t.mark}`, `${num(t.detail_rows)} query rows${t.detail_truncated ? " (cut at the cap)" : ""}`];
  parts.push(`${num(t.page_rows)} page rows${t.page_truncated ? " (cut at the cap)" : ""}`);
  if (t.anonymized_share !== null) parts.push(`${num(t.anonymized_share * 100, 1)} % of clicks from anonymized queries`);
  parts.push(`${t.data_state}, fetched ${t.fetched_at.slice(0, 16).replace("T", " ")}`);
  return parts.join(", ");
}

/**
 * The coverage calendar: one row per week, one cell per day, coloured by state, with the day's completeness
 * mark (complete, truncated, provisional, derived; the worst of its search types) and the details per search
 * type in its tooltip (and as text for screen readers).
 */
export function CoverageCalendar(props: {
  start: string;
  end: string;
  states: Map<string, DayState>;
  rowsByDay: Map<string, number>;
  completeness?: Map<string, CompletenessDay>;
}) {
  const weeks: string[][] = [];
  for (let w = monday(props.start); w <= props.end; w = addDays(w, 7)) weeks.push(dayRange(w, addDays(w, 6)));
  const counts = { final: 0, provisional: 0, missing: 0, failed: 0 };
  for (const s of props.states.values()) counts[s]++;
  const markCounts = { complete: 0, truncated: 0, provisional: 0, derived: 0 };
  for (const c of props.completeness?.values() ?? []) if (props.states.has(c.date)) markCounts[c.mark]++;
  return (
    <figure class="calendar">
      <table aria-describedby="calendar-legend">
        <caption>
          Coverage {props.start} to {props.end}: {counts.final} final, {counts.provisional} provisional, {counts.failed} failed,{" "}
          {counts.missing} missing
          {props.completeness
            ? `; fetched at Search Console's grains: ${markCounts.complete} complete, ${markCounts.truncated} truncated, ${markCounts.provisional} provisional, ${markCounts.derived} derived`
            : ""}
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
                const c = props.completeness?.get(d);
                const label = [`${d}: ${state}${rows > 0 ? `, ${num(rows)} rows` : ""}`, ...(c ? c.types.map(completenessWords) : [])].join(
                  "; ",
                );
                return (
                  <td class={`day ${state}`} data-date={d} data-state={state} data-completeness={c?.mark} title={label}>
                    <span class="sr">{label}</span>
                    <span aria-hidden="true">{Number(d.slice(8))}</span>
                    {c ? (
                      <span class={`mark ${c.mark}`} aria-hidden="true">
                        {marks[c.mark].symbol}
                      </span>
                    ) : null}
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
        {props.completeness ? (
          <span class="marks">
            {(Object.keys(marks) as CompletenessMark[]).map((m) => (
              <span data-mark={m}>
                <span class={`mark ${m}`} aria-hidden="true">
                  {marks[m].symbol}
                </span>{" "}
                {marks[m].words}
              </span>
            ))}
          </span>
        ) : null}
      </figcaption>
    </figure>
  );
}
