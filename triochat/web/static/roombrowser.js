// The room browser: every room on the server with its member count and topic, and a
// button to join (or open) each. Built from a `rooms` event; text from the server only
// ever becomes text nodes.

import { el } from "./view.js";

/**
 * The browser's table.
 * @param {Array<{room: string, online: number, topic?: string}>} rooms the server's list
 * @param {(room: string) => boolean} isIn whether you are in that room already
 * @param {(room: string) => void} choose called with the room whose button was clicked
 */
export function roomTable(rooms, isIn, choose) {
  const table = el("table", "room-table");
  const head = el("tr", "", el("th", "", "room"), el("th", "count", "members"), el("th", "", "topic"), el("th", "", ""));
  const body = el("tbody", "");
  const sorted = [...rooms].sort((a, b) => b.online - a.online || String(a.room).localeCompare(String(b.room)));
  for (const info of sorted) {
    const name = String(info.room);
    const here = isIn(name);
    const button = el("button", "join-room", here ? "open" : "join");
    button.type = "button";
    button.setAttribute("aria-label", `${here ? "open" : "join"} ${name}`);
    button.addEventListener("click", () => choose(name));
    body.append(
      el(
        "tr",
        here ? "in" : "",
        el("td", "room-cell", name),
        el("td", "count", String(info.online)),
        el("td", "topic-cell", String(info.topic ?? "")),
        el("td", "", button),
      ),
    );
  }
  table.append(el("thead", "", head), body);
  return table;
}
