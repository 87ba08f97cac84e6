// The connection to the server: one WebSocket at a time, one JSON event per message,
// and reconnecting by itself with the terminal client's schedule
// (triochat/client/reconnect.py): 0.5 s doubling to 30 s, each wait shortened by a random
// part of up to half, so clients of a restarted server do not all knock at once.

export const BACKOFF_FIRST = 0.5; // seconds before the first retry
export const BACKOFF_MAX = 30; // seconds between retries at most
export const BACKOFF_JITTER = 0.5; // fraction of each wait that is random
export const STABLE_CONNECTION = 10; // seconds a connection must last to start the schedule over

/** Seconds to wait before retry number `attempt` (0 first), for a draw in [0, 1). */
export function backoffDelay(attempt, draw) {
  const nominal = Math.min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** Math.min(attempt, 64));
  return nominal * (1 - BACKOFF_JITTER * draw);
}

/** The chat WebSocket's address: this page's host, ws: or wss: to match http: or https:. */
export function socketUrl(location) {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
}

export class ChatSocket {
  /**
   * @param {string} url the WebSocket's address
   * @param {object} handlers onOpen(), onEvent(object), onText(string), onClose(),
   *   onWait(seconds): called with the wait before each retry
   * @param {() => object} hello builds the hello sent first on each connection
   */
  constructor(url, handlers, hello) {
    this.url = url;
    this.handlers = handlers;
    this.hello = hello;
    this.ws = null;
    this.attempt = 0;
    this.stopped = true;
    this.timer = null;
    this.openedAt = 0;
  }

  get connected() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  start() {
    this.stopped = false;
    this.attempt = 0;
    this.connect();
  }

  /** Close for good: no more retries. */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  /** Send one request; false if there is no connection. */
  send(request) {
    if (!this.connected) return false;
    this.ws.send(JSON.stringify(request));
    return true;
  }

  connect() {
    clearTimeout(this.timer);
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.openedAt = Date.now();
      ws.send(JSON.stringify(this.hello()));
      this.handlers.onOpen();
    };
    ws.onmessage = (message) => {
      if (typeof message.data !== "string") return;
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        this.handlers.onText(message.data); // "! server full ...": said before closing
        return;
      }
      if (event && typeof event === "object" && !Array.isArray(event)) this.handlers.onEvent(event);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.handlers.onClose();
      if (this.stopped) return;
      if (this.openedAt && Date.now() - this.openedAt >= STABLE_CONNECTION * 1000) this.attempt = 0;
      this.openedAt = 0;
      const delay = backoffDelay(this.attempt++, Math.random());
      this.handlers.onWait(delay);
      this.timer = setTimeout(() => this.connect(), delay * 1000);
    };
  }
}
