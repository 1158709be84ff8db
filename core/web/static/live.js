// The realtime client of the staff pages (protocol: docs/plugins/realtime.md).
// Trades the session for a single-use ticket, opens the WebSocket, subscribes with the last
// event id seen per topic, answers pings, and on any close reconnects with backoff and jitter,
// so it receives exactly what it missed. Shows its state in an element with data-state.

import { signInAgain, t } from "tenantry/ui.js";

const BACKOFF_MS = [1000, 2000, 4000, 8000, 10000];
const POLL_MS = 5000;

export class Live {
  /**
   * @param {object} options
   * @param {string} options.ticketUrl  POST here (session cookie) for {ticket, topics}
   * @param {string} options.socketUrl  the WebSocket path (/api/tenants/<id>/realtime/ws)
   * @param {string[]} options.topics   topics to follow
   * @param {(frame: object) => void} options.onEvent  an event frame
   * @param {(why: string) => void} options.onReload   reload the state over HTTP
   *        (first subscription, a `reset`, or a poll when live events are not available)
   * @param {HTMLElement} [options.stateElement]
   */
  constructor({ ticketUrl, socketUrl, topics, onEvent, onReload, stateElement }) {
    Object.assign(this, { ticketUrl, socketUrl, topics, onEvent, onReload, stateElement });
    this.cursors = {};
    this.attempt = 0;
    this.socket = null;
    this.seen = new Set(); // event ids already handled (one event may come on two topics)
  }

  start() {
    this.connect();
    // Back on screen or back online: try now instead of waiting out the backoff.
    const now = () => {
      if (document.visibilityState === "visible" && !this.socket && this.timer && this.state === "offline") {
        clearTimeout(this.timer);
        this.connect();
      }
    };
    document.addEventListener("visibilitychange", now);
    window.addEventListener("online", now);
    return this;
  }

  setState(state) {
    this.state = state;
    if (this.stateElement) {
      this.stateElement.dataset.state = state;
      this.stateElement.textContent = t(`web.state_${state}`);
    }
  }

  async connect() {
    this.timer = null;
    this.setState("connecting");
    let ticket;
    try {
      const response = await fetch(this.ticketUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-Tenantry-Web": "1", Accept: "application/json" },
      });
      if (response.status === 404) return this.poll(); // the tenant does not enable realtime
      // The session expired or was ended: retrying cannot help, signing in again does.
      if (response.status === 401) return signInAgain();
      if (!response.ok) throw new Error(`ticket: HTTP ${response.status}`);
      ticket = await response.json();
    } catch {
      return this.retry();
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}${this.socketUrl}?ticket=${encodeURIComponent(ticket.ticket)}`);
    this.socket = socket;
    socket.onopen = () => {
      const topics = {};
      for (const topic of this.topics.filter((name) => ticket.topics.includes(name))) {
        topics[topic] = this.cursors[topic] ?? null;
      }
      socket.send(JSON.stringify({ type: "subscribe", topics }));
    };
    socket.onmessage = (message) => this.receive(socket, JSON.parse(message.data));
    socket.onclose = () => {
      if (this.socket === socket) this.socket = null;
      this.retry();
    };
  }

  receive(socket, frame) {
    switch (frame.type) {
      case "subscribed": {
        const fresh = !(frame.topic in this.cursors);
        this.cursors[frame.topic] = frame.cursor;
        this.attempt = 0;
        this.setState("live");
        // Subscribed "from now on": what happened before is read over HTTP, after this point.
        if (fresh) this.onReload("subscribed");
        break;
      }
      case "event":
        this.cursors[frame.topic] = frame.id;
        if (this.seen.has(frame.event_id)) break;
        this.seen.add(frame.event_id);
        if (this.seen.size > 5000) this.seen = new Set([...this.seen].slice(-1000));
        this.onEvent(frame);
        break;
      case "reset":
        this.onReload("reset");
        break;
      case "ping":
        socket.send('{"type":"pong"}');
        break;
      default:
        break;
    }
  }

  retry() {
    this.setState("offline");
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.timer = setTimeout(() => this.connect(), delay * (0.8 + Math.random() * 0.4));
  }

  poll() {
    this.setState("polling");
    this.onReload("poll");
    this.timer = setTimeout(() => this.poll(), POLL_MS);
  }
}
