// Building the page's pieces. Rule: text from the server (names, messages, topics,
// room names) only ever becomes text nodes (textContent), never HTML. Links are made
// only for http: and https: URLs, with rel="noopener noreferrer".

import { colourClass } from "./colour.js";
import { isMention, mentionRanges } from "./mention.js";

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?)\]}'"]+$/; // punctuation after a link is not part of it

/** An element with classes and children (strings become text nodes). */
export function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

/** A safe link for `text` if it is an http(s) URL, else null. */
function safeLink(text) {
  let url;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  const a = el("a", "", text);
  a.href = url.href;
  a.rel = "noopener noreferrer";
  a.target = "_blank";
  return a;
}

/** Message text as nodes: plain text, with http(s) URLs as safe links; the places that
 * name `me` (if given) are marked. */
export function richText(text, me = "") {
  const span = el("span", "text");
  const marks = me ? mentionRanges(text, me) : [];
  if (marks.length) {
    let at = 0;
    for (const [start, end] of marks) {
      span.append(richText(text.slice(at, start)), el("mark", "mention", text.slice(start, end)));
      at = end;
    }
    span.append(richText(text.slice(at)));
    return span;
  }
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    let found = match[0];
    const tail = TRAILING.exec(found);
    if (tail) found = found.slice(0, -tail[0].length);
    const link = found.length > 8 ? safeLink(found) : null;
    if (!link) continue;
    span.append(text.slice(last, match.index), link);
    last = match.index + found.length;
  }
  span.append(text.slice(last));
  return span;
}

/** HH:MM of the server's time (Unix seconds), in this browser's time zone. */
export function clock(ts) {
  const date = new Date(typeof ts === "number" ? ts * 1000 : Date.now());
  if (Number.isNaN(date.getTime())) return "--:--";
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** A name in its colour. */
export function nameNode(name, extra = "") {
  return el("span", `name ${colourClass(name)}${extra ? ` ${extra}` : ""}`, name);
}

/** One line of the log: time, then the parts; `kind` is its CSS class. */
export function line(kind, ts, ...parts) {
  const item = el("li", `line ${kind}`, el("time", "", clock(ts)), el("span", "body", ...parts));
  if (typeof ts === "number") item.title = new Date(ts * 1000).toLocaleString();
  return item;
}

/** A chat line (`say` or `me`) for the log; a live line naming `me` is a mention. */
export function chatLine(event, mine, me = "") {
  const from = String(event.from);
  const classes = [event.type === "me" ? "action" : "chat"];
  if (mine) classes.push("own");
  if (event.history) classes.push("history");
  const mention = me !== "" && isMention(event, me);
  if (mention) classes.push("mention");
  const text = richText(String(event.text), mention ? me : "");
  const item =
    event.type === "me"
      ? line(classes.join(" "), event.ts, "* ", nameNode(from), " ", text)
      : line(classes.join(" "), event.ts, nameNode(from), " ", text);
  item.dataset.id = String(event.id);
  return item;
}

/** A private message, either way. */
export function privateLine(event, me) {
  const from = String(event.from);
  const to = String(event.to);
  const outgoing = from.toLowerCase() === me.toLowerCase();
  const who = outgoing
    ? [el("span", "you", "you"), " → ", nameNode(to, "private-name")]
    : [nameNode(from, "private-name"), " → ", el("span", "you", "you")];
  const kind = event.history ? "private history" : "private"; // replayed: dim, as history
  return line(kind, event.ts, el("span", "tag", "private"), " ", ...who, ": ", richText(String(event.text)));
}

/** A muted notice (joins, leaves, topics, lists). */
export function noticeLine(ts, ...parts) {
  return line("notice", ts, ...parts);
}

/** An error, to you only. */
export function errorLine(ts, text) {
  return line("error", ts, `! ${text}`);
}

/** An away notice: set or cleared, for its subject (`me`) or for someone messaging them. */
export function awayLine(event, me) {
  const name = String(event.name);
  const text = String(event.text ?? "");
  if (name.toLowerCase() === me.toLowerCase()) {
    const parts = text ? ["you are marked away: ", richText(text)] : ["you are back (no longer away)"];
    return line("notice away", event.ts, ...parts);
  }
  const parts = text ? [" is away: ", richText(text)] : [" is back"];
  return line("notice away", event.ts, nameNode(name), ...parts);
}

/** The server's /help text as a two-column table: usage, what it does. Each section's
 * text column is where most of its lines have a gap of two spaces or more (the
 * terminal client's rule, triochat/client/render.py help_rows). */
export function helpTable(text) {
  const table = el("table", "help");
  const body = el("tbody", "");
  table.append(body);
  let section = [];
  const flush = () => {
    const counts = new Map();
    for (const row of section) {
      const gap = /\S( {2,})\S/.exec(row);
      if (gap) {
        const column = gap.index + 1 + gap[1].length;
        counts.set(column, (counts.get(column) ?? 0) + 1);
      }
    }
    const column = [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 0;
    for (const row of section) {
      const split = column && row.length > column && row[column - 1] === " ";
      const usage = split ? row.slice(0, column).trim() : "";
      const what = split ? row.slice(column).trim() : row.trim();
      body.append(el("tr", "", el("td", "usage", el("code", "", usage)), el("td", "", what)));
    }
    section = [];
  };
  for (const row of String(text).split("\n")) {
    if (row.startsWith(" ")) {
      section.push(row);
      continue;
    }
    flush();
    if (row.trim()) body.append(el("tr", "", el("th", "", row)));
  }
  flush();
  for (const th of table.querySelectorAll("th")) th.colSpan = 2;
  return table;
}
