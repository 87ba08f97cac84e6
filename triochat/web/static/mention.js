// When a line names you: the server's and the terminal client's rule
// (triochat/core/mentions.py, a test runs both): your name or @name, in any case, not
// inside a longer name (letters of any script, digits, _ . -); "alice." ending a
// sentence names alice, "alice.smith" does not.

const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const W = "\\p{L}\\p{N}_"; // Python's \w: letters and digits of any script

/** [start, end) of each place `text` names `me`. */
export function mentionRanges(text, me) {
  if (!me) return [];
  const re = new RegExp(`(?<![${W}.-])@?${escape(me)}(?![${W}-]|\\.[${W}])`, "giu");
  return [...String(text).matchAll(re)].map((m) => [m.index, m.index + m[0].length]);
}

/** True for a live chat line from someone else that names `me`. */
export function isMention(event, me) {
  if (event.history || (event.type !== "say" && event.type !== "me")) return false;
  if (String(event.from).toLowerCase() === String(me).toLowerCase()) return false;
  return mentionRanges(String(event.text), me).length > 0;
}
