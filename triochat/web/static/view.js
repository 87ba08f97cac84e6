// Building the page's pieces. Rule: text from the server (names, messages, topics,
// room names) only ever becomes text nodes (textContent), never HTML. Links are made
// only for http: and https: URLs, with rel="noopener noreferrer".

import { colourClass } from "./colour.js";

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

/** Message text as nodes: plain text, with http(s) URLs as safe links. */
export function richText(text) {
  const span = el("span", "text");
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

/** A chat line (`say` or `me`) for the log. */
export function chatLine(event, mine) {
  const from = String(event.from);
  const classes = [event.type === "me" ? "action" : "chat"];
  if (mine) classes.push("own");
  if (event.history) classes.push("history");
  const item =
    event.type === "me"
      ? line(classes.join(" "), event.ts, "* ", nameNode(from), " ", richText(String(event.text)))
      : line(classes.join(" "), event.ts, nameNode(from), " ", richText(String(event.text)));
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
  return line("private", event.ts, el("span", "tag", "private"), " ", ...who, ": ", richText(String(event.text)));
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
