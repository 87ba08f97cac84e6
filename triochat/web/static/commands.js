// What the user typed, as the JSON request to send (docs/protocol.md). The syntax is the
// plain-mode one the terminal client and nc users type; the server checks the details
// (names, room names) and answers with an error event when something is wrong.

import { searchRequest } from "./search.js";

export const HISTORY_DEFAULT = 20; // /history without N, as on the server
export const HISTORY_MAX = 200; // the server's upper bound for one /history

const DURATION_RE = /^\d+[smhdw]$/; // 30s, 10m, 2h, 7d, 4w
const ROOM_RE = /^#?([a-z0-9_.-]{1,32})$/; // docs/protocol.md, Rooms (case-insensitive)

/** The room `text` names (`Dev` is `#dev`), or null if it is not a room name. */
export function roomName(text) {
  const match = ROOM_RE.exec(String(text).trim().toLowerCase());
  return match ? `#${match[1]}` : null;
}

function splitWord(text) {
  const match = /^(\S+)\s*([\s\S]*)$/.exec(text.trim());
  return match ? [match[1], match[2].trim()] : ["", ""];
}

/**
 * Translate one typed line.
 * @param {string} line what was typed
 * @param {string|null} room the current room (named in every request, so a line typed
 *   just before the server moves you elsewhere cannot land in the wrong room)
 * @returns {{request?: object, error?: string, quit?: boolean, password?: string} | null}
 *   null: nothing to do; `password`: the account password the request carries (kept
 *   in memory for reconnecting once the server accepts it)
 */
export function parseLine(line, room) {
  const text = line.trim();
  if (!text) return null;
  const here = room ? { room } : {};
  if (!text.startsWith("/")) return { request: { type: "say", text, ...here } };
  if (text.startsWith("//")) return { request: { type: "say", text: text.slice(1), ...here } };
  if (/^\/\s/.test(text)) return { error: "unknown command /; type /help" };
  const [verbWord, rest] = splitWord(text.slice(1));
  const verb = verbWord.toLowerCase();
  switch (verb) {
    case "me":
      return rest ? { request: { type: "me", text: rest, ...here } } : { error: "usage: /me ACTION" };
    case "join":
      return rest ? { request: { type: "join", room: rest } } : { error: "usage: /join ROOM" };
    case "part":
      return { request: { type: "part", ...(rest ? { room: rest } : here) } };
    case "rooms":
      return { request: { type: "rooms" } };
    case "who":
      return { request: { type: "who", ...(rest ? { room: rest } : here) } };
    case "topic":
      return { request: { type: "topic", ...here, ...(rest ? { text: rest } : {}) } };
    case "history": {
      // /history @NAME [N]: your private conversation with NAME (registered names)
      let about = here;
      let count = rest;
      if (rest.startsWith("@")) {
        const [peer, more] = splitWord(rest.slice(1));
        if (!peer) return { error: "usage: /history @NAME [N]" };
        about = { with: peer };
        count = more;
      }
      if (!count) return { request: { type: "history", ...about, limit: HISTORY_DEFAULT } };
      const n = /^\d+$/.test(count) ? Number(count) : 0;
      if (n < 1 || n > HISTORY_MAX) return { error: `usage: /history [@NAME] [N], N from 1 to ${HISTORY_MAX}` };
      return { request: { type: "history", ...about, limit: n } };
    }
    case "search":
      return searchRequest(rest);
    case "msg": {
      const [to, body] = splitWord(rest);
      return to && body ? { request: { type: "msg", to, text: body } } : { error: "usage: /msg NAME TEXT" };
    }
    case "nick":
      return rest ? { request: { type: "nick", name: rest } } : { error: "usage: /nick NAME" };
    case "away": // a message sets it, nothing clears it ("you are back")
      return { request: { type: "away", text: rest } };
    case "register":
      return rest && !/\s/.test(rest)
        ? { request: { type: "register", password: rest }, password: rest }
        : { error: "usage: /register PASSWORD" };
    case "login": {
      const [name, password] = splitWord(rest);
      return name && password && !/\s/.test(password)
        ? { request: { type: "login", name, password }, password }
        : { error: "usage: /login NAME PASSWORD" };
    }
    case "password": {
      const [old, now] = splitWord(rest);
      return old && now && !/\s/.test(now)
        ? { request: { type: "password", old, new: now }, password: now }
        : { error: "usage: /password OLD NEW" };
    }
    // Operators (docs/protocol.md, Operators); the server says if you are not one.
    case "kick": {
      const [name, reason] = splitWord(rest);
      return name ? { request: { type: "kick", name, ...(reason ? { reason } : {}) } } : { error: "usage: /kick NAME [REASON]" };
    }
    case "ban": {
      const [target, more] = splitWord(rest);
      if (!target) return { error: "usage: /ban TARGET [DURATION] [REASON]" };
      const [first, after] = splitWord(more);
      const duration = DURATION_RE.test(first) ? first : "";
      const reason = duration ? after : more;
      return { request: { type: "ban", target, ...(duration ? { duration } : {}), ...(reason ? { reason } : {}) } };
    }
    case "mute": {
      const [name, duration] = splitWord(rest);
      return name ? { request: { type: "mute", name, ...(duration ? { duration } : {}) } } : { error: "usage: /mute NAME [DURATION]" };
    }
    case "unban":
      return rest ? { request: { type: "unban", target: rest } } : { error: "usage: /unban TARGET" };
    case "unmute":
    case "op":
    case "deop":
    case "drop":
      return rest ? { request: { type: verb, name: rest } } : { error: `usage: /${verb} NAME` };
    case "bans":
      return { request: { type: "bans" } };
    case "locktopic":
    case "unlocktopic":
      return { request: { type: "topic-lock", ...(rest ? { room: rest } : here), locked: verb === "locktopic" } };
    case "notify": {
      const [first, level] = splitWord(rest);
      const only = /^(all|mentions|none)$/i.test(first) && !level; // a level for this room
      const room = first && !only ? { room: first } : here;
      const set = only ? first : level;
      return { request: { type: "notify", ...room, ...(set ? { level: set.toLowerCase() } : {}) } };
    }
    case "mentions":
      return { request: { type: "mentions" } };
    case "help":
      return { request: { type: "help" } };
    case "quit":
      return { request: { type: "quit" }, quit: true };
    default:
      return { error: `unknown command /${verbWord}; type /help for the list` };
  }
}
