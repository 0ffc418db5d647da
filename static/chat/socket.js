// The one WebSocket: connection state, reconnect with back-off and jitter, joins with
// `after` (recovery of what was missed), gap detection, and the dispatch of frames.

import { api } from "./api.js";
import { failPending, noteTyping, transmit } from "./composer.js";
import { el, showError } from "./dom.js";
import { applyReaction } from "./message-actions.js";
import { isListedMember, loadMembers, renderMembers, setOnline } from "./members.js";
import { renderMessages, roomMessages, storeMessage } from "./messages.js";
import { countUnread, isMember, refreshRooms, removedFrom, upsertRoom } from "./rooms.js";
import { ME, state } from "./state.js";

/** A socket that has authenticated: joins and other frames may go out. */
export function socketReady() {
  return Boolean(state.socket && state.authenticated);
}

export function setConnection(kind, text) {
  el.connection.dataset.state = kind;
  el.connection.textContent = text;
}

export function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/`);
  state.socket = socket;
  state.authenticated = false;
  socket.addEventListener("message", (event) => {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    handleFrame(frame);
  });
  socket.addEventListener("close", (event) => {
    if (state.socket !== socket) return;
    state.socket = null;
    state.authenticated = false;
    if (event.code === 4401) {
      location.href = "/login/?next=/";
      return;
    }
    reconnectLater();
  });
}

function reconnectLater() {
  const delay = Math.min(state.backoff, 30000);
  state.backoff = Math.min(state.backoff * 2, 30000);
  const wait = delay / 2 + Math.random() * (delay / 2); // jitter: not all tabs at once
  setConnection(navigator.onLine === false ? "offline" : "reconnecting",
    navigator.onLine === false ? "Offline" : `Reconnecting in ${Math.ceil(wait / 1000)} s…`);
  setTimeout(connect, wait);
}

export function joinRoom(roomId) {
  const room = state.rooms.get(roomId);
  if (!state.lastPos.has(roomId) && room && typeof room.pos === "number") {
    // What the room list showed is as of `room.pos`: replay anything after it.
    state.lastPos.set(roomId, room.pos);
  }
  const frame = { type: "join", room: roomId, ref: `join-${roomId}` };
  if (state.lastPos.has(roomId)) frame.after = state.lastPos.get(roomId);
  state.socket.send(JSON.stringify(frame));
}

/** Positions of a room must arrive without a gap; a gap means a missed change. */
function notePosition(roomId, pos) {
  if (pos === undefined || pos === null) return;
  const last = state.lastPos.get(roomId);
  if (last !== undefined && pos > last + 1 && !state.recovering.has(roomId)) {
    state.recovering.add(roomId);
    state.socket.send(JSON.stringify({ type: "join", room: roomId, after: last, ref: `recover-${roomId}` }));
  }
  if (last === undefined || pos > last) state.lastPos.set(roomId, pos);
}

function handleFrame(frame) {
  switch (frame.type) {
    case "authenticated":
      state.authenticated = true;
      state.backoff = 1000;
      setConnection("connected", "Connected");
      for (const room of state.rooms.values()) if (isMember(room)) joinRoom(room.id);
      for (const pending of state.pending.values()) transmit(pending);
      if (state.reconnected) refreshRooms();
      state.reconnected = true;
      break;
    case "ack":
      if (frame.pos !== undefined && !state.lastPos.has(frame.room)) {
        state.lastPos.set(frame.room, frame.pos); // a join: live positions follow this one
      }
      if (frame.message) {
        storeMessage(frame.message);
      } else if (typeof frame.ref === "string" && frame.ref.startsWith("recover-")) {
        state.recovering.delete(frame.room);
      } else if (frame.unread_count !== undefined) {
        upsertRoom({ id: frame.room, unread_count: frame.unread_count });
      }
      break;
    case "error":
      if (frame.ref && state.pending.has(frame.ref)) failPending(frame.ref, frame.message);
      else if (typeof frame.ref === "string" && frame.ref.startsWith("recover-")) state.recovering.clear();
      else if (frame.code !== "not_found") showError(el.composerError, frame.message);
      break;
    case "message":
    case "message_updated": {
      notePosition(frame.room, frame.pos);
      const isNew = storeMessage(frame.message);
      if (frame.type === "message" && isNew) countUnread(frame.message);
      if (frame.message.room === state.current) scheduleRead();
      break;
    }
    case "message_deleted": {
      notePosition(frame.room, frame.pos);
      const message = roomMessages(frame.room).get(frame.message_id);
      if (message) storeMessage({ ...message, pos: frame.pos, deleted: true, content: "", attachments: [] });
      break;
    }
    case "reaction_added":
    case "reaction_removed":
      notePosition(frame.room, frame.pos);
      applyReaction(frame);
      break;
    case "typing":
      noteTyping(frame);
      break;
    case "room_users":
      for (const user of frame.users) state.online.add(user.id);
      renderMembers();
      break;
    case "user_joined":
      setOnline(frame.user.id, true);
      if (frame.room === state.current && !isListedMember(frame.user.id)) loadMembers(frame.room);
      break;
    case "user_online":
    case "user_offline":
      setOnline(frame.user_id, frame.is_online);
      break;
    case "user_left":
      if (frame.user && frame.user.id === ME.id) removedFrom(frame.room);
      break;
    case "room_added":
      api("GET", `/api/rooms/${frame.room}/`)
        .then((room) => {
          const known = state.rooms.has(room.id) && isMember(state.rooms.get(room.id));
          upsertRoom(room);
          if (!known && socketReady()) joinRoom(room.id);
        })
        .catch(() => {});
      break;
    case "room_deleted":
      removedFrom(frame.room);
      break;
    case "room_purged":
      roomMessages(frame.room).clear();
      if (frame.room === state.current) renderMessages();
      break;
    default:
      break;
  }
}

/** Tell the server what the reader has seen in the open room (debounced). */
export function scheduleRead() {
  clearTimeout(state.readTimer);
  state.readTimer = setTimeout(() => {
    const roomId = state.current;
    const room = state.rooms.get(roomId);
    if (!room || !isMember(room) || document.visibilityState !== "visible") return;
    const latest = [...roomMessages(roomId).values()].reduce((a, b) => (a && a.seq > b.seq ? a : b), null);
    if (!latest || !state.socket || state.socket.readyState !== WebSocket.OPEN) return;
    state.socket.send(JSON.stringify({ type: "read", room: roomId, message_id: latest.id, ref: `read-${roomId}` }));
  }, 300);
}

export function initConnection() {
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") scheduleRead();
  });
  window.addEventListener("online", () => {
    if (!state.socket) connect();
  });
  window.addEventListener("offline", () => setConnection("offline", "Offline"));
}
