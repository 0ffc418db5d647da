// The one WebSocket: connection state, reconnect with back-off and jitter, joins with
// `after` (recovery of what was missed), gap detection, and the dispatch of frames.

import { failPending, noteTyping, transmit } from "./composer.js";
import { el, showError } from "./dom.js";
import { applyReaction } from "./message-actions.js";
import { applyPresence, isListedMember, loadMembers, noteRoomUsers, setOnline } from "./members.js";
import { renderMessages, roomMessages, storeMessage } from "./messages.js";
import { announce } from "./notify.js";
import { countUnread, isMember, refreshRooms, reloadRoom, removedFrom, upsertRoom } from "./rooms.js";
import { ME, state } from "./state.js";
import { applyUserFrame } from "./userstream.js";

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
  // Back from a drop: the user's stream replays what happened to their rooms meanwhile.
  const query = state.userPos === null ? "" : `?after_user=${state.userPos}`;
  let socket;
  try {
    socket = new WebSocket(`${scheme}://${location.host}/ws/${query}`);
  } catch {
    reconnectLater(); // refused before it started (a policy, a bad URL): try again later
    return;
  }
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
      checkSignedIn();
      return;
    }
    reconnectLater();
  });
}

/** A socket closed with 4401: signed out, or its credentials were revoked while this
 *  session stays signed in (a password change made on this page: the revocation can close
 *  the socket before the answer brings the session's new cookie). Ask the API a few times
 *  before going to the sign-in page. */
async function checkSignedIn(attempt = 0) {
  // A request with the old cookie before the answer lands would sign this session out.
  if (state.credentialsChange) await state.credentialsChange.catch(() => {});
  const answer = await fetch("/api/auth/me/", { credentials: "same-origin", headers: { Accept: "application/json" } })
    .catch(() => null);
  if (answer && answer.ok) {
    reconnectLater();
  } else if (answer && answer.status === 401 && attempt >= 2) {
    location.href = "/login/?next=/";
  } else {
    setTimeout(() => checkSignedIn(attempt + 1), 1000);
  }
}

function reconnectLater() {
  const delay = Math.min(state.backoff, 30000);
  state.backoff = Math.min(state.backoff * 2, 30000);
  const wait = delay / 2 + Math.random() * (delay / 2); // jitter: not all tabs at once
  setConnection(navigator.onLine === false ? "offline" : "reconnecting",
    navigator.onLine === false ? "Offline" : `Reconnecting in ${Math.ceil(wait / 1000)} s…`);
  setTimeout(connect, wait);
}

/** What to send to join a room: `after` the last position shown, when there is one. */
function joinItem(roomId) {
  const room = state.rooms.get(roomId);
  if (!state.lastPos.has(roomId) && room && typeof room.pos === "number") {
    // What the room list showed is as of `room.pos`: replay anything after it.
    state.lastPos.set(roomId, room.pos);
  }
  const item = { room: roomId };
  if (state.lastPos.has(roomId)) item.after = state.lastPos.get(roomId);
  return item;
}

export function joinRoom(roomId) {
  state.socket.send(JSON.stringify({ type: "join", ...joinItem(roomId), ref: `join-${roomId}` }));
}

/** Join every room at once (after `authenticated`): one frame per 100 rooms, one answer. */
function joinRooms(roomIds) {
  for (let i = 0; i < roomIds.length; i += 100) {
    const rooms = roomIds.slice(i, i + 100).map(joinItem);
    state.socket.send(JSON.stringify({ type: "join", rooms, ref: `join-rooms-${i}` }));
  }
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
      joinRooms([...state.rooms.values()].filter(isMember).map((room) => room.id));
      for (const pending of state.pending.values()) transmit(pending);
      // A server that keeps the user's stream replays what changed since `after_user`;
      // one that does not: reload the room list.
      if (typeof frame.user_pos === "number") {
        if (state.userPos === null) state.userPos = frame.user_pos;
      } else if (state.reconnected) {
        refreshRooms();
      }
      state.reconnected = true;
      break;
    case "ack":
      if (frame.pos !== undefined && !state.lastPos.has(frame.room)) {
        state.lastPos.set(frame.room, frame.pos); // a join: live positions follow this one
      }
      for (const joined of frame.rooms || []) {  // a batched join
        if (!state.lastPos.has(joined.room)) state.lastPos.set(joined.room, joined.pos);
      }
      if (frame.message) {
        storeMessage(frame.message);
      } else if (typeof frame.ref === "string" && frame.ref.startsWith("recover-")) {
        state.recovering.delete(frame.room);
      } else if (frame.unread_count !== undefined) {
        const counts = { id: frame.room, unread_count: frame.unread_count };
        if (frame.mention_count !== undefined) counts.mention_count = frame.mention_count;
        upsertRoom(counts);
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
      if (frame.type === "message" && isNew) {
        if (countUnread(frame.message)) announce(frame.message);
        // A notice (renamed, archived…): the room's header and composer follow at once,
        // even from a server without the user's stream.
        if (frame.message.type === "system") reloadRoom(frame.message.room);
      }
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
      noteRoomUsers(frame);
      break;
    case "room_presence":
      applyPresence(frame);
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
    case "room_removed":
    case "room_updated":
    case "room_deleted":
    case "membership_changed":
    case "room_read":
      applyUserFrame(frame);
      break;
    case "room_purged":
      roomMessages(frame.room).clear();
      if (frame.room === state.current) renderMessages();
      break;
    default:
      break;
  }
}

/** Tell the server what the reader has seen in the open room (debounced per room: a
 *  room left quickly for the next one is still marked read). */
export function scheduleRead() {
  const roomId = state.current;
  if (roomId === null) return;
  clearTimeout(state.readTimers.get(roomId));
  state.readTimers.set(roomId, setTimeout(() => {
    state.readTimers.delete(roomId);
    const room = state.rooms.get(roomId);
    if (!room || !isMember(room) || document.visibilityState !== "visible") return;
    const latest = [...roomMessages(roomId).values()].reduce((a, b) => (a && a.seq > b.seq ? a : b), null);
    if (!latest || !state.socket || state.socket.readyState !== WebSocket.OPEN) return;
    state.socket.send(JSON.stringify({ type: "read", room: roomId, message_id: latest.id, ref: `read-${roomId}` }));
  }, 300));
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
