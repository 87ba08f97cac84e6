// When a line names you: the terminal client's rule (triochat/client/render.py,
// mention_spans): your name or @name, in any case, not inside a longer name (letters,
// digits, _ . -); "alice." ending a sentence names alice, "alice.smith" does not.

const escape = (text) => text.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");

/** [start, end) of each place `text` names `me`. */
export function mentionRanges(text, me) {
  if (!me) return [];
  const re = new RegExp(`(?<![\\w.-])@?${escape(me)}(?![\\w-]|\\.\\w)`, "gi");
  return [...String(text).matchAll(re)].map((m) => [m.index, m.index + m[0].length]);
}

/** True for a live chat line from someone else that names `me`. */
export function isMention(event, me) {
  if (event.history || (event.type !== "say" && event.type !== "me")) return false;
  if (String(event.from).toLowerCase() === String(me).toLowerCase()) return false;
  return mentionRanges(String(event.text), me).length > 0;
}
