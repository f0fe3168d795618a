// The search types a daily sync fetches and Google's dimension rules per type: a leaf module, so the
// sources (src/sync/gsc/client.ts, src/sync/demo.ts) and the handlers import it without a circle via source.ts.
import { searchTypeCodes, type SearchTypeCode } from "../db/enums.ts";

/** The search types a daily sync fetches, each stored at its grains (docs/design/grains.md). */
export const searchTypes = searchTypeCodes;
export type SearchType = SearchTypeCode;

/**
 * Google's rules per search type (Search Console API, "type" parameter; docs/design/grains.md):
 * discover answers neither `query` nor `device` (nor a position), googleNews no `query`; search
 * appearance is fetched for the four search types (web, image, video, news).
 */
export function typeRules(type: SearchType): { query: boolean; device: boolean; appearance: boolean } {
  return {
    query: type !== "discover" && type !== "googleNews",
    device: type !== "discover",
    appearance: type === "web" || type === "image" || type === "video" || type === "news",
  };
}
