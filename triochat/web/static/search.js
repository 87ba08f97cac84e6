// /search on the page: the request typed, and the answer as a list of hits, each a
// button that shows the line in its place (docs/protocol.md, History). Server text only
// ever becomes text nodes.

import { el, nameNode } from "./view.js";

const ROOM_RE = /^#?([a-z0-9_.-]{1,32})$/;

/** `/search [in:#room|in:@NAME] [from:NAME] [before:N] WORDS` as the request, or an error. */
export function searchRequest(rest) {
  const request = { type: "search" };
  const words = [];
  for (const word of rest.split(/\s+/).filter(Boolean)) {
    const at = word.indexOf(":");
    const key = at > 0 ? word.slice(0, at).toLowerCase() : "";
    const value = at > 0 ? word.slice(at + 1) : "";
    if (key === "in" && value.startsWith("@") && value.length > 1 && !request.room && !request.with) {
      request.with = value.slice(1); // one of your private conversations
    } else if (key === "in" && value && !request.room && !request.with) {
      const match = ROOM_RE.exec(value.toLowerCase());
      if (!match) return { error: `not a room name: ${value}` };
      request.room = `#${match[1]}`;
    } else if (key === "from" && value && !request.from) request.from = value;
    else if (key === "before" && /^\d+$/.test(value)) request.before = Number(value);
    else words.push(word);
  }
  if (!words.length) return { error: "usage: /search [in:#room|in:@NAME] [from:NAME] WORDS" };
  request.text = words.join(" ");
  return { request };
}

function when(ts) {
  const date = new Date(Number(ts) * 1000);
  if (Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/**
 * The answer to a search as one log entry.
 * @param {object} event the `search` event
 * @param {(hit: object) => void} pick called with a hit when it is clicked
 * @param {(before: number) => void} more called for the next page
 */
export function searchBlock(event, pick, more) {
  const hits = Array.isArray(event.hits) ? event.hits : [];
  const query = String(event.query ?? "");
  const head = hits.length
    ? `search "${query}": ${hits.length}${event.more ? "+" : ""} found, newest first`
    : `search "${query}": nothing found`;
  const list = el("ol", "hits");
  for (const hit of hits) {
    const button = el(
      "button",
      "hit",
      el("span", "hit-room", String(hit.room)),
      el("time", "hit-time", when(hit.ts)),
      nameNode(String(hit.from)),
      el("span", "text", ` ${String(hit.text)}`),
    );
    button.type = "button";
    button.dataset.room = String(hit.room);
    button.dataset.id = String(hit.id);
    button.title = `show it in ${hit.room}`;
    button.addEventListener("click", () => pick(hit));
    list.append(el("li", "", button));
  }
  const block = el("li", "search", el("div", "search-head", head), list);
  if (event.more) {
    const next = el("button", "search-more", "more results");
    next.type = "button";
    next.addEventListener("click", () => more(Number(event.more)));
    block.append(next);
  }
  return block;
}
