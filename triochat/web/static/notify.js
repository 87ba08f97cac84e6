// Per-room notification levels (/notify: all, mentions, none; as the server tells them)
// and the browser's Notification API: asked for once, on a user gesture, never again;
// used only while the tab is hidden.
import { isMention } from "./mention.js";

export const levels = new Map(); // room -> level
const ASKED = "triochat-notify-asked";

/** True if a chat `event` from someone else should alert `me` in its room. */
export function alerts(event, me) {
  const level = levels.get(event.room) ?? "mentions";
  if (level === "none" || event.history || String(event.from).toLowerCase() === String(me).toLowerCase()) return false;
  return level === "all" || isMention(event, me);
}

/** Ask for permission, once ever (call it from a user gesture). */
export function askOnce() {
  if (!("Notification" in window) || Notification.permission !== "default") return;
  try {
    if (localStorage.getItem(ASKED)) return;
    localStorage.setItem(ASKED, "1");
  } catch {
    return; // nowhere to remember it: never ask rather than ask again
  }
  Notification.requestPermission().catch(() => {});
}

/** A desktop notification for `event`, if the tab is hidden and it alerts `me`. */
export function notify(event, me) {
  if (!document.hidden || !("Notification" in window) || Notification.permission !== "granted") return;
  if (alerts(event, me)) new Notification(`${event.from} in ${event.room}`, { body: String(event.text).slice(0, 200), tag: event.room });
}
