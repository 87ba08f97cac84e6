// What the user typed, as the JSON request to send (docs/protocol.md). The syntax is the
// plain-mode one the terminal client and nc users type; the server checks the details
// (names, room names) and answers with an error event when something is wrong.

export const HISTORY_DEFAULT = 20; // /history without N, as on the server
export const HISTORY_MAX = 200; // the server's upper bound for one /history

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
 * @returns {{request?: object, error?: string, quit?: boolean} | null} null: nothing to do
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
      if (!rest) return { request: { type: "history", ...here, limit: HISTORY_DEFAULT } };
      const n = /^\d+$/.test(rest) ? Number(rest) : 0;
      if (n < 1 || n > HISTORY_MAX) return { error: `usage: /history [N], N from 1 to ${HISTORY_MAX}` };
      return { request: { type: "history", ...here, limit: n } };
    }
    case "msg": {
      const [to, body] = splitWord(rest);
      return to && body ? { request: { type: "msg", to, text: body } } : { error: "usage: /msg NAME TEXT" };
    }
    case "nick":
      return rest ? { request: { type: "nick", name: rest } } : { error: "usage: /nick NAME" };
    case "help":
      return { request: { type: "help" } };
    case "quit":
      return { request: { type: "quit" }, quit: true };
    default:
      return { error: `unknown command /${verbWord}; type /help for the list` };
  }
}
