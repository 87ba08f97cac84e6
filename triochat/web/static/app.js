// The triochat page: the name prompt, then rooms, messages, people and the input.
// State lives here; socket.js keeps the connection; view.js builds the nodes.
//
// Rules: the server's order and time are the truth (your own lines are shown when the
// server echoes them back, with their id); every room remembers the last id shown, so
// after a reconnect the page asks to resume from there and drops any replayed message
// it has already shown: no duplicates, no gaps.

import { parseLine, roomName } from "./commands.js";
import { ChatSocket, socketUrl } from "./socket.js";
import { roomTable } from "./roombrowser.js";
import { isMention } from "./mention.js";
import { askOnce, levels, notify } from "./notify.js";
import { searchBlock } from "./search.js";
import { awayLine, chatLine, el, errorLine, helpTable, nameNode, noticeLine, privateLine, richText } from "./view.js";

const NAME_KEY = "triochat.name"; // localStorage: the name to offer next time
const NAME_RE = /^[A-Za-z0-9_.-]{1,24}$/; // docs/protocol.md, Names
const OLDER_PAGE = 50; // messages per "load older"
const QUIET_REASONS = new Set(["quit", "closed", ""]); // leaves not worth a reason
const NEAR_BOTTOM_PX = 48; // follow new lines if the log is scrolled this close to the end
const INPUT_HISTORY = 100; // sent lines that Up can recall
// Refusals of a hello that may pass by themselves: a reconnect keeps trying through them
// (the server may still hold our old connection); any other refusal stops and asks.
const RETRY_ERRORS = new Set(["name-taken", "try-again", "server-busy", "accounts-unavailable"]);
const JOIN_FAILURES = new Set(["bad-room", "too-many-rooms", "no-such-room"]); // answers to a join

const $ = (id) => document.getElementById(id);
const ui = {
  login: $("login"),
  loginForm: $("login-form"),
  name: $("name"),
  loginError: $("login-error"),
  password: $("password"),
  serverPassword: $("server-password"),
  serverPasswordRow: $("server-password-row"),
  app: $("app"),
  menu: $("menu"),
  side: $("side"),
  roomTitle: $("room-title"),
  topic: $("topic"),
  status: $("status"),
  rooms: $("rooms"),
  joinForm: $("join-form"),
  browse: $("browse"),
  browser: $("browser"),
  browserList: $("browser-list"),
  browserClose: $("browser-close"),
  joinRoom: $("join-room"),
  online: $("online"),
  people: $("people"),
  log: $("log"),
  sayForm: $("say"),
  input: $("input"),
};

const state = {
  me: "",
  current: null, // the room shown and typed into
  rooms: new Map(), // name -> room (see newRoom)
  welcomed: false, // on this connection
  everWelcomed: false, // on any connection: later ones resume
  resume: null, // {current, missed, marker} while a resume is replaying
  pendingJoin: null, // {room, previous}: typed /join, shown at once, not yet confirmed
  browsing: 0, // rooms answers the room browser asked for (shown there, not in the log)
  password: "", // the account's, once accepted: memory only, for the reconnecting hello
  pendingPassword: null, // carried by a /register, /login or /password not yet answered
  serverPassword: "", // a private server's (--password-file), when it asked for one
  sent: [], // lines typed, for Up/Down
  search: null, // the last search request: its "more results" asks for the next page
  recall: -1,
  countdown: null,
  privateLast: null, // the highest stored private line id shown: resumed with since "@"
  privateAsked: 0, // /history @NAME answers still to come (older by design: shown)
  notifyAsked: 0, // /notify requests not answered yet (their answers are always shown)
};

const same = (a, b) => String(a).toLowerCase() === String(b).toLowerCase();

// -- rooms -------------------------------------------------------------------------------

function newRoom(name) {
  const older = el("button", "older", "load older messages");
  older.type = "button";
  older.hidden = true;
  const list = el("ol", "messages");
  const section = el("section", "room-log", older, list);
  section.hidden = true;
  section.dataset.room = name;
  section.setAttribute("aria-label", `messages in ${name}`);
  ui.log.append(section);
  const room = {
    name,
    lastId: null, // highest id shown: where a resume starts
    oldestId: null, // lowest id shown: where "load older" continues
    more: null, // older messages exist (null: not known yet)
    loadingOlder: false,
    olderBuffer: [],
    topic: "",
    online: null,
    members: null, // Set of names once a who answer came
    away: new Map(), // name -> away message, as the last who answer said
    unread: 0,
    mentions: 0, // lines naming you since you last looked (not in a room set to none)
    follow: true, // keep the newest line in view (false once scrolled up)
    silentWho: 0, // who answers the page asked for itself (not shown)
    divider: null, // the "earlier messages" line: replayed history goes below it and above
    anchor: null, // the first live line (your welcome or join), which stays at the bottom
    section,
    list,
    older,
  };
  older.addEventListener("click", () => loadOlder(room));
  return room;
}

function ensureRoom(name) {
  let room = state.rooms.get(name);
  if (!room) {
    room = newRoom(name);
    state.rooms.set(name, room);
    renderRooms();
  }
  return room;
}

function dropRoom(name) {
  const room = state.rooms.get(name);
  if (!room) return;
  room.section.remove();
  state.rooms.delete(name);
  if (state.current === name) setCurrent(state.rooms.keys().next().value ?? null);
  renderRooms();
}

function setCurrent(name) {
  state.current = name;
  for (const room of state.rooms.values()) room.section.hidden = room.name !== name;
  const room = name ? state.rooms.get(name) : null;
  if (room) {
    room.unread = room.mentions = 0;
    if (room.members === null) askWho(room);
    scrollToEnd(room, true);
  }
  ui.roomTitle.textContent = name ?? "no room";
  ui.input.placeholder = name ? `Message ${name} (/help for commands)` : "/join a room";
  renderTopic();
  renderRooms();
  renderPeople();
  renderOlder(room);
}

function askWho(room) {
  if (socket.send({ type: "who", room: room.name })) room.silentWho++;
}

function loadOlder(room) {
  if (room.loadingOlder || room.oldestId === null) return;
  const request = { type: "history", room: room.name, limit: OLDER_PAGE, before: room.oldestId };
  if (socket.send(request)) {
    room.loadingOlder = true;
    renderOlder(room);
  }
}

// -- rendering ---------------------------------------------------------------------------

function renderRooms() {
  const items = [];
  for (const room of state.rooms.values()) {
    const button = el("button", "room", el("span", "room-name", room.name));
    button.type = "button";
    if (room.unread) button.append(el("span", "unread", String(room.unread)));
    if (room.mentions) button.append(el("span", "unread mentions", `@${room.mentions}`));
    if (room.topic) button.append(el("span", "room-topic", room.topic));
    if (room.name === state.current) button.setAttribute("aria-current", "true");
    button.setAttribute(
      "aria-label",
      `${room.name}${room.unread ? `, ${room.unread} unread` : ""}${room.mentions ? `, ${room.mentions} naming you` : ""}${room.topic ? `: ${room.topic}` : ""}`,
    );
    button.addEventListener("click", () => switchTo(room.name));
    items.push(el("li", "", button));
  }
  ui.rooms.replaceChildren(...items);
  const unread = [...state.rooms.values()].reduce((sum, room) => sum + room.unread, 0);
  ui.menu.dataset.unread = unread ? String(unread) : "";
  document.title = unread ? `(${unread}) triochat` : "triochat";
}

function renderTopic() {
  const room = state.current ? state.rooms.get(state.current) : null;
  ui.topic.textContent = room?.topic ?? "";
}

function renderPeople() {
  const room = state.current ? state.rooms.get(state.current) : null;
  ui.online.textContent = room?.online != null ? `(${room.online})` : "";
  const names = room?.members ? [...room.members].sort((a, b) => a.localeCompare(b)) : [];
  ui.people.replaceChildren(
    ...names.map((name) => {
      const away = room.away.get(name);
      const item = el("li", same(name, state.me) ? "me" : "", nameNode(name), ...(away !== undefined ? [" (away)"] : []));
      if (away !== undefined) item.title = `away: ${away}`;
      return item;
    }),
  );
}

function renderOlder(room) {
  if (!room) return;
  room.older.hidden = !(room.oldestId !== null && room.oldestId > 1 && room.more !== false);
  room.older.disabled = room.loadingOlder;
  room.older.textContent = room.loadingOlder ? "loading…" : "load older messages";
}

function nearBottom() {
  return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < NEAR_BOTTOM_PX;
}

function scrollToEnd(room, force = false) {
  if (room.name === state.current && (force || room.follow !== false)) {
    ui.log.scrollTop = ui.log.scrollHeight;
  }
}

/** Append a line to a room's log (the current room's when `roomName` is null). */
function show(node, roomName = null) {
  const name = roomName ?? state.current;
  const room = name ? state.rooms.get(name) : null;
  if (!room) {
    ui.status.textContent = node.textContent;
    return;
  }
  const follow = room.name !== state.current || nearBottom();
  room.list.append(node);
  if (room.anchor === null) room.anchor = node;
  if (follow) scrollToEnd(room, true);
}

/** The room's "earlier messages" divider, made at the top of its log when first needed. */
function divider(room) {
  if (room.divider === null) {
    room.divider = el("li", "divider", el("span", "", "earlier messages"));
    room.divider.setAttribute("role", "separator");
    room.list.prepend(room.divider);
  }
  return room.divider;
}

/** A replayed line that is older than the live ones: below the divider, above your
 * welcome (or join) line, so that line stays at the bottom. */
function showEarlier(node, room) {
  divider(room);
  const follow = room.name !== state.current || nearBottom();
  if (room.anchor !== null && room.anchor.parentNode === room.list) room.list.insertBefore(node, room.anchor);
  else room.list.append(node);
  if (follow) scrollToEnd(room, true);
}

function setStatus(text, kind = "") {
  ui.status.textContent = text;
  ui.status.className = `status ${kind}`;
}

// -- events from the server --------------------------------------------------------------

function onChat(event) {
  if (typeof event.room !== "string" || typeof event.id !== "number") return;
  const room = ensureRoom(event.room);
  const id = event.id;
  if (event.history && room.loadingOlder && room.oldestId !== null && id < room.oldestId) {
    room.olderBuffer.push(event); // scrollback: shown at the top when history-end comes
    return;
  }
  if (room.lastId !== null && id <= room.lastId) {
    if (event.history) return; // shown already: a resume overlapping what we have
    room.oldestId = null; // live and not newer: the server's ids started again
  }
  room.lastId = id;
  if (room.oldestId === null || id < room.oldestId) room.oldestId = id;
  const mine = same(event.from, state.me);
  const node = chatLine(event, mine, state.me);
  if (event.history && !state.resume) showEarlier(node, room);
  else show(node, room.name);
  if (state.resume && event.history) state.resume.missed++;
  if (!event.history) notify(event, state.me);
  if (room.name !== state.current && !mine && (!event.history || state.resume)) {
    room.unread++;
    if (isMention({ ...event, history: false }, state.me) && levels.get(room.name) !== "none") room.mentions++;
    renderRooms();
  }
  renderOlder(room);
}

function onPrivate(event) {
  const id = typeof event.id === "number" ? event.id : 0; // 0: a guest's, never stored
  const asked = event.history && state.privateAsked > 0;
  if (id && event.history && !asked) {
    if (state.privateLast !== null && id <= state.privateLast) return; // shown already
    if (state.resume) state.resume.missed++;
  }
  if (id && !asked) state.privateLast = Math.max(state.privateLast ?? 0, id);
  show(privateLine(event, state.me));
}

/** Show line `id` of `room` (already in its log) in the middle of the view, marked. */
function scrollToLine(room, id) {
  const node = room.list.querySelector(`li[data-id="${id}"]`);
  if (!node) return false;
  for (const old of ui.log.querySelectorAll("li.jumped")) old.classList.remove("jumped");
  node.classList.add("jumped");
  node.scrollIntoView({ block: "center" });
  return true;
}

/** A search hit was clicked: go to its room and show it in its place. */
function jumpTo(hit) {
  const name = String(hit.room);
  const id = Number(hit.id);
  if (!state.rooms.has(name)) {
    socket.send({ type: "join", room: name }); // an operator's hit in a room not joined
    state.pendingJoin = { room: name, previous: state.current };
    ensureRoom(name);
  }
  if (name !== state.current) switchTo(name);
  const room = state.rooms.get(name);
  if (!room || scrollToLine(room, id)) return;
  room.jump = id; // shown once the lines around it came (onHistoryEnd)
  room.loadingOlder = true;
  socket.send({ type: "history", room: name, around: id, limit: OLDER_PAGE });
}

function onSearch(event) {
  const more = (before) => state.search && socket.send({ ...state.search, before });
  show(searchBlock(event, jumpTo, more));
}

function onHistoryEnd(event) {
  if (String(event.room).startsWith("@")) {
    state.privateAsked = Math.max(0, state.privateAsked - 1);
    show(noticeLine(event.ts, `end of your private history with ${String(event.room).slice(1)}`));
    return;
  }
  const room = state.rooms.get(event.room);
  if (!room) return;
  if (room.loadingOlder) {
    const older = room.olderBuffer.sort((a, b) => a.id - b.id);
    room.olderBuffer = [];
    const before = ui.log.scrollHeight - ui.log.scrollTop;
    const nodes = older.map((e) => chatLine(e, same(e.from, state.me)));
    divider(room).after(...nodes);
    if (older.length) room.oldestId = older[0].id;
    if (room.name === state.current) ui.log.scrollTop = ui.log.scrollHeight - before;
    room.loadingOlder = false;
  }
  room.more = Boolean(event.more);
  renderOlder(room);
  if (room.jump != null) {
    if (room.name === state.current) scrollToLine(room, room.jump);
    room.jump = null;
  }
}

function onJoin(event) {
  const room = ensureRoom(event.room);
  if (typeof event.online === "number") room.online = event.online;
  if (same(event.name, state.me)) {
    if (!state.resume) {
      show(noticeLine(event.ts, "→ you joined ", event.room, ` (${event.online} online)`), room.name);
    }
    room.members = null;
    askWho(room);
  } else {
    room.members?.add(String(event.name));
    show(noticeLine(event.ts, "→ ", nameNode(String(event.name)), ` joined (${event.online} online)`), room.name);
  }
  if (room.name === state.current) renderPeople();
}

function onLeave(event) {
  const room = state.rooms.get(event.room);
  if (!room) return;
  if (same(event.name, state.me)) {
    dropRoom(room.name);
    const why = String(event.reason ?? "");
    if (why.startsWith("kicked from ")) show(noticeLine(event.ts, `← you were ${why}`));
    else show(noticeLine(event.ts, "← you left ", String(event.room)));
    return;
  }
  if (typeof event.online === "number") room.online = event.online;
  room.members?.delete(String(event.name));
  const reason = QUIET_REASONS.has(event.reason ?? "") ? "" : `: ${event.reason}`;
  show(noticeLine(event.ts, "← ", nameNode(String(event.name)), ` left${reason} (${event.online} online)`), room.name);
  if (room.name === state.current) renderPeople();
}

function onPresence(event) {
  const room = state.rooms.get(event.room);
  if (!room) return;
  room.online = event.online;
  show(noticeLine(event.ts, `${event.joined} joined, ${event.left} left (${event.online} online)`), room.name);
  room.members = null;
  if (room.name === state.current) askWho(room);
}

function onWho(event) {
  const room = state.rooms.get(event.room);
  const names = Array.isArray(event.names) ? event.names.map(String) : [];
  const away = new Map(Object.entries(event.away ?? {}).map(([name, text]) => [name, String(text)]));
  if (room) room.away = away;
  if (room && room.silentWho > 0) {
    room.silentWho--;
    room.members = new Set(names);
    room.online = event.online;
    if (room.name === state.current) renderPeople();
    if (state.resume && state.resume.marker === room.name && room.silentWho === 0) finishResume();
    return;
  }
  const parts = [`online in ${event.room} (${names.length}): `];
  names.forEach((name, i) => parts.push(...(i ? [", "] : []), nameNode(name)));
  if (away.size) {
    parts.push("; away: ");
    [...away].forEach(([name, text], i) => parts.push(...(i ? [", "] : []), nameNode(name), " (", richText(text), ")"));
  }
  if (room?.name === state.current) renderPeople();
  show(noticeLine(event.ts, ...parts));
}

function onTopic(event) {
  const room = state.rooms.get(event.room);
  if (!room) return;
  room.topic = String(event.topic ?? "");
  renderRooms();
  renderTopic();
  if (event.changed) {
    const what = room.topic ? ["set the topic: ", richText(room.topic)] : ["cleared the topic"];
    show(noticeLine(event.ts, nameNode(String(event.by)), " ", ...what), room.name);
  } else if (!state.resume && room.topic) {
    // No topic is not news: nothing is shown ("topic: none" was noise on every join).
    const by = event.by ? [" (set by ", nameNode(String(event.by)), ")"] : [];
    show(noticeLine(event.ts, "topic: ", richText(room.topic), ...by), room.name);
  }
}

function onNick(event) {
  const [old, now] = [String(event.old), String(event.new)];
  if (same(old, state.me)) {
    state.me = now;
    localStorage.setItem(NAME_KEY, now);
  }
  for (const room of state.rooms.values()) {
    if (room.members?.has(old)) {
      room.members.delete(old);
      room.members.add(now);
    }
  }
  renderPeople();
  show(noticeLine(event.ts, nameNode(old), " is now known as ", nameNode(now)));
}

function onRooms(event) {
  const rooms = Array.isArray(event.rooms) ? event.rooms : [];
  if (state.browsing > 0) {
    state.browsing--;
    const choose = (name) => {
      showBrowser(false);
      if (state.rooms.has(name)) switchTo(name);
      else submit(`/join ${name}`);
    };
    ui.browserList.replaceChildren(roomTable(rooms, (name) => state.rooms.has(name), choose));
    return;
  }
  show(noticeLine(event.ts, `rooms (${rooms.length}):`));
  for (const info of rooms) {
    const topic = info.topic ? [" — ", richText(String(info.topic))] : [];
    show(noticeLine(event.ts, `  ${info.room} (${info.online} online)`, ...topic));
  }
}

function showBrowser(open) {
  ui.browser.hidden = !open;
  if (open) {
    ui.browserList.replaceChildren(el("p", "hint", "loading…"));
    if (socket.send({ type: "rooms" })) state.browsing++;
    showSide(false);
    ui.browserClose.focus();
  } else {
    ui.input.focus();
  }
}

function onWelcome(event) {
  state.welcomed = true;
  state.me = String(event.name);
  localStorage.setItem(NAME_KEY, state.me);
  ensureRoom(event.room);
  if (state.everWelcomed) {
    // A resume: the server replays what we missed in every room; then put us back in
    // the room we were looking at, and take the answer to a who there as the end.
    const back = state.resume.current && state.rooms.has(state.resume.current) ? state.resume.current : event.room;
    state.resume.marker = back;
    socket.send({ type: "join", room: back });
    askWho(ensureRoom(back));
    return;
  }
  state.everWelcomed = true;
  setCurrent(event.room);
  setStatus(`connected as ${state.me}`, "ok");
  show(noticeLine(event.ts, String(event.text ?? "")));
  socket.send({ type: "topic", room: event.room }); // as /join shows it; the welcome does not
}

function finishResume() {
  const { current, missed } = state.resume;
  state.resume = null;
  setCurrent(state.rooms.has(current) ? current : (state.current ?? state.rooms.keys().next().value));
  const news = missed === 1 ? "1 missed message" : `${missed} missed messages`;
  setStatus(`reconnected; ${news}`, "ok");
}

function onError(event) {
  if (!state.welcomed) {
    // The hello was refused (the server closes the connection).
    if (state.everWelcomed && RETRY_ERRORS.has(event.code)) {
      setStatus(`${event.text}; reconnecting…`, "warn");
      return;
    }
    socket.stop();
    const registered = event.code === "name-registered" || event.code === "bad-password";
    const text =
      event.code === "name-registered" ? `the name ${state.me} is registered: enter its password below` : String(event.text);
    showLogin(text, event.code === "server-password", registered);
    return;
  }
  if (event.code === "bad-password" || event.code === "weak-password") state.pendingPassword = null;
  if (JOIN_FAILURES.has(event.code) && state.pendingJoin) {
    const { room, previous } = state.pendingJoin;
    state.pendingJoin = null;
    if (state.rooms.get(room)?.lastId === null) dropRoom(room);
    if (previous && state.rooms.has(previous)) setCurrent(previous);
  }
  show(errorLine(event.ts, String(event.text)));
}

const HANDLERS = {
  // The server checks that a silent member is still there: answer, or be dropped.
  ping: () => socket.send({ type: "pong" }),
  welcome: onWelcome,
  say: onChat,
  me: onChat,
  "history-end": onHistoryEnd,
  search: onSearch,
  join: onJoin,
  leave: onLeave,
  presence: onPresence,
  who: onWho,
  topic: onTopic,
  nick: onNick,
  rooms: onRooms,
  current: (event) => {
    if (state.resume || typeof event.room !== "string") return;
    if (state.pendingJoin?.room === event.room) state.pendingJoin = null;
    setCurrent(ensureRoom(event.room).name);
  },
  msg: onPrivate,
  away: (event) => show(awayLine(event, state.me)),
  help: (event) => show(noticeLine(event.ts, helpTable(String(event.text)))),
  notice: (event) => show(noticeLine(event.ts, String(event.text))),
  gap: (event) => {
    const room = state.rooms.get(event.room);
    if (room) room.more = true;
    show(noticeLine(event.ts, `${event.skipped} older messages were not replayed; load older to see them`), event.room);
  },
  error: onError,
  notify: (event) => {
    const known = levels.get(event.room) === event.level; // told again on a reconnect
    levels.set(event.room, event.level);
    if (!known || state.notifyAsked) show(noticeLine(event.ts, `notifications in ${event.room}: ${event.level}`));
    state.notifyAsked = Math.max(0, state.notifyAsked - 1);
  },
  mentions: (event) => {
    const found = Array.isArray(event.mentions) ? event.mentions : [];
    show(noticeLine(event.ts, found.length ? `mentions of you (${found.length}, newest first):` : "no mentions of you"));
    for (const m of found) show(noticeLine(m.ts, `${m.room} <${m.from}> ${m.text}`));
  },
  account: (event) => {
    // Registered, logged in or changed: the password now works; a reconnect sends it.
    if (state.pendingPassword !== null) state.password = state.pendingPassword;
    state.pendingPassword = null;
    show(noticeLine(event.ts, String(event.text ?? `account: ${event.action}`)));
  },
  bans: (event) => {
    const bans = Array.isArray(event.bans) ? event.bans : [];
    show(noticeLine(event.ts, `bans (${bans.length}):`));
    for (const ban of bans) {
      show(noticeLine(event.ts, `  ${ban.target} (by ${ban.by})${ban.reason ? `: ${ban.reason}` : ""}`));
    }
  },
  shutdown: (event) => {
    show(noticeLine(event.ts, String(event.text ?? "server is shutting down")));
    setStatus("the server is shutting down", "warn");
  },
};

// -- the connection ----------------------------------------------------------------------

function hello() {
  const request = { type: "hello", name: state.me };
  if (state.password) request.password = state.password;
  if (state.serverPassword) request.server_password = state.serverPassword;
  state.welcomed = false;
  if (state.everWelcomed) {
    const since = {};
    const rooms = [];
    for (const room of state.rooms.values()) {
      if (room.lastId !== null) since[room.name] = room.lastId;
      else rooms.push(room.name);
    }
    if (state.privateLast !== null) since["@"] = state.privateLast;
    state.privateAsked = 0;
    if (Object.keys(since).length) request.since = since;
    if (rooms.length) request.rooms = rooms;
    state.resume = { current: state.current, missed: 0, marker: null };
    for (const room of state.rooms.values()) {
      room.silentWho = 0;
      room.loadingOlder = false;
      room.olderBuffer = [];
    }
  }
  return request;
}

const socket = new ChatSocket(
  socketUrl(window.location),
  {
    onOpen() {
      clearInterval(state.countdown);
      if (state.everWelcomed) setStatus("reconnecting…", "warn");
    },
    onEvent(event) {
      const handler = HANDLERS[event.type];
      if (handler) handler(event);
      else if (typeof event.text === "string") show(noticeLine(event.ts, event.text)); // mod, newer
    },
    onText(text) {
      show(errorLine(undefined, text.replace(/^! /, "")));
      setStatus(text.replace(/^! /, ""), "warn");
    },
    onClose() {
      if (state.welcomed) show(noticeLine(undefined, "lost the connection"));
      state.welcomed = false;
      for (const room of state.rooms.values()) renderOlder(room);
    },
    onWait(seconds) {
      clearInterval(state.countdown);
      const until = Date.now() + seconds * 1000;
      const tick = () => {
        const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
        setStatus(left ? `reconnecting in ${left} s…` : "reconnecting…", "warn");
      };
      tick();
      state.countdown = setInterval(tick, 250);
    },
  },
  hello,
);

// -- typing ------------------------------------------------------------------------------

function remember(line) {
  if (state.sent[state.sent.length - 1] !== line) state.sent.push(line);
  if (state.sent.length > INPUT_HISTORY) state.sent.shift();
  state.recall = -1;
}

function submit(line) {
  const parsed = parseLine(line, state.current);
  if (!parsed) return;
  remember(line);
  if (parsed.error) {
    show(errorLine(undefined, parsed.error));
    return;
  }
  const request = parsed.request;
  if (request.type === "search" && request.before === undefined) state.search = request;
  if (request.type === "history") {
    const room = state.rooms.get(request.room);
    if (room?.oldestId != null) request.before = room.oldestId;
    if (room && room.oldestId != null && !room.loadingOlder) {
      room.loadingOlder = true;
      renderOlder(room);
    }
  }
  if (!socket.send(request)) {
    show(errorLine(undefined, `not connected; not sent: ${line} (Up brings it back)`));
    if (request.type === "history") {
      const room = state.rooms.get(request.room);
      if (room) room.loadingOlder = false;
    }
    return;
  }
  if (parsed.password) state.pendingPassword = parsed.password;
  if (request.type === "history" && request.with) state.privateAsked++;
  if (request.type === "notify") state.notifyAsked++;
  if (request.type === "join" && roomName(request.room)) {
    // What is typed next goes to the new room, even before the server answers.
    const room = roomName(request.room);
    state.pendingJoin = { room, previous: state.current };
    ensureRoom(room);
    setCurrent(room);
  }
  if (parsed.quit) {
    socket.stop();
    setStatus("you left; reload the page to come back", "");
  }
}

function switchTo(name) {
  if (name === state.current) return;
  socket.send({ type: "join", room: name }); // makes it the server's current room too
  setCurrent(name);
  showSide(false);
  ui.input.focus();
}

ui.sayForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const line = ui.input.value;
  ui.input.value = "";
  askOnce(); // a user gesture: the one time the page may ask to notify
  submit(line);
});

ui.input.addEventListener("keydown", (e) => {
  if (e.key === "ArrowUp" && state.sent.length && (ui.input.value === "" || state.recall >= 0)) {
    e.preventDefault();
    state.recall = state.recall < 0 ? state.sent.length - 1 : Math.max(0, state.recall - 1);
    ui.input.value = state.sent[state.recall];
  } else if (e.key === "ArrowDown" && state.recall >= 0) {
    e.preventDefault();
    state.recall++;
    if (state.recall >= state.sent.length) {
      state.recall = -1;
      ui.input.value = "";
    } else {
      ui.input.value = state.sent[state.recall];
    }
  }
});

ui.joinForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const name = ui.joinRoom.value.trim();
  ui.joinRoom.value = "";
  if (name) submit(`/join ${name}`);
});

function showSide(open) {
  document.body.classList.toggle("show-side", open);
  ui.menu.setAttribute("aria-expanded", String(open));
}

ui.menu.addEventListener("click", () => showSide(!document.body.classList.contains("show-side")));
ui.log.addEventListener("click", () => showSide(false));
ui.browse.addEventListener("click", () => showBrowser(true));
ui.browserClose.addEventListener("click", () => showBrowser(false));
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && !ui.browser.hidden) {
    showBrowser(false);
    return;
  }
  if (e.key === "Escape" && document.body.classList.contains("show-side")) {
    showSide(false);
    ui.menu.focus();
  }
});

ui.log.addEventListener("scroll", () => {
  const room = state.current ? state.rooms.get(state.current) : null;
  if (room) room.follow = nearBottom();
});

// -- the name prompt ---------------------------------------------------------------------

function showLogin(error = "", askServerPassword = false, askPassword = false) {
  ui.app.hidden = true;
  ui.login.hidden = false;
  ui.loginError.textContent = error;
  if (askServerPassword) ui.serverPasswordRow.hidden = false;
  ui.name.value = localStorage.getItem(NAME_KEY) ?? "";
  if (askPassword) {
    ui.password.focus();
    return;
  }
  ui.name.focus();
  ui.name.select();
}

ui.loginForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const name = ui.name.value.trim();
  if (!NAME_RE.test(name)) {
    ui.loginError.textContent = "a name is 1 to 24 of A-Z a-z 0-9 _ . -";
    return;
  }
  localStorage.setItem(NAME_KEY, name);
  state.me = name;
  state.password = ui.password.value;
  state.serverPassword = ui.serverPassword.value;
  ui.password.value = "";
  ui.login.hidden = true;
  ui.app.hidden = false;
  ui.roomTitle.textContent = "";
  setStatus("connecting…", "warn");
  ui.input.focus();
  socket.start();
});

showLogin();
document.documentElement.dataset.ready = "true"; // the modules loaded (tests wait for it)
