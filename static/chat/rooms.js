// The room list in the sidebar: labels, unread badges, presence dots of direct rooms,
// and opening a room. Rooms are told apart by their fields (`kind`, `peer`,
// `is_general`), never by their display names.

import { api } from "./api.js";
import { renderTyping } from "./composer.js";
import { el, h, nameOf } from "./dom.js";
import { renderReplyBanner } from "./message-actions.js";
import { loadHistory, renderMessages } from "./messages.js";
import { loadMembers } from "./members.js";
import { joinRoom, scheduleRead, socketReady } from "./socket.js";
import { ME, state } from "./state.js";

/** A direct room is shown as its peer (yourself in a room with yourself). */
function roomLabel(room) {
  if (room.kind !== "direct") return room.name;
  return room.peer ? nameOf(room.peer) : room.name;
}

export function isMember(room) {
  return room.my_role !== null && room.my_role !== undefined;
}

/** The room everyone has (the server flags it), or undefined before the list loads. */
export function generalRoom() {
  return [...state.rooms.values()].find((r) => r.is_general);
}

/** The room to show when none is chosen: General if the user is in it, else any of theirs. */
export function defaultRoom() {
  const rooms = [...state.rooms.values()].filter(isMember);
  return rooms.find((r) => r.is_general) || rooms[0];
}

export function renderRoomList() {
  const rooms = [...state.rooms.values()].filter(isMember);
  const byName = (a, b) => roomLabel(a).localeCompare(roomLabel(b));
  el.rooms.replaceChildren(
    ...rooms.filter((r) => r.kind !== "direct").sort(byName).map(roomItem),
  );
  el.directs.replaceChildren(
    ...rooms.filter((r) => r.kind === "direct").sort(byName).map(roomItem),
  );
}

function roomItem(room) {
  const dot =
    room.kind === "direct"
      ? h("span", {
          class: `presence-dot${state.online.has(room.peer_id) ? " online" : ""}`,
          "aria-label": state.online.has(room.peer_id) ? "online" : "offline",
        })
      : h("span", { class: "room-hash", "aria-hidden": "true", text: room.kind === "private" ? "🔒" : "#" });
  const badge = h("span", {
    class: "unread-badge",
    text: String(room.unread_count || 0),
    hidden: !room.unread_count,
    "aria-label": `${room.unread_count || 0} unread`,
  });
  const item = h(
    "li",
    {
      "data-room-id": room.id,
      class: room.id === state.current ? "active" : "",
      tabindex: 0,
      role: "button",
      "aria-current": room.id === state.current ? "true" : null,
      onclick: () => openRoom(room.id),
      onkeydown: (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          openRoom(room.id);
        }
      },
    },
    dot,
    h("span", { class: "room-name", text: roomLabel(room) }),
    badge,
  );
  if (room.is_archived) item.classList.add("archived");
  return item;
}

export async function loadRooms() {
  let url = "/api/rooms/?limit=200";
  while (url) {
    const page = await api("GET", url);
    for (const room of page.results) state.rooms.set(room.id, room);
    url = page.next;
  }
  renderRoomList();
}

/** Rooms the user was added to while this page was not connected (the server says
 *  `room_added` to connected pages): reload the list and join the new ones. */
export async function refreshRooms() {
  if (!state.authenticated) return;
  const known = new Set([...state.rooms.values()].filter(isMember).map((r) => r.id));
  const current = state.rooms.get(state.current);
  try {
    await loadRooms();
  } catch {
    return;
  }
  if (current) upsertRoom({ id: current.id, unread_count: current.unread_count });
  for (const room of state.rooms.values()) {
    if (isMember(room) && !known.has(room.id) && socketReady()) joinRoom(room.id);
  }
}

export function upsertRoom(room) {
  state.rooms.set(room.id, { ...state.rooms.get(room.id), ...room });
  renderRoomList();
}

/** A room the user joined or made from this page: list it, subscribe to it, open it. */
export function enterRoom(room) {
  upsertRoom(room);
  if (socketReady()) joinRoom(room.id);
  openRoom(room.id);
}

export async function openRoom(roomId) {
  const room = state.rooms.get(roomId);
  if (!room) return;
  state.current = roomId;
  state.replyTo = null;
  renderReplyBanner();
  el.title.textContent = roomLabel(room);
  el.description.textContent = room.description || "";
  document.title = `${roomLabel(room)} · Chat`;
  el.app.classList.remove("show-sidebar");
  renderRoomList();
  renderMessages();
  renderTyping();
  el.input.disabled = room.is_archived;
  el.input.placeholder = room.is_archived
    ? "This room is archived and read-only."
    : "Write a message… (Enter sends, Shift+Enter for a new line)";
  if (!state.history.get(roomId)?.loaded) await loadHistory(roomId);
  loadMembers(roomId);
  scheduleRead();
}

/** The user left the room or it is gone: a public room stays browsable. */
export function removedFrom(roomId) {
  const room = state.rooms.get(roomId);
  if (room && room.kind === "public") upsertRoom({ id: roomId, my_role: null });
  else state.rooms.delete(roomId);
  renderRoomList();
  if (state.current === roomId) {
    const next = defaultRoom();
    if (next) openRoom(next.id);
  }
}

/** A new message from someone else in a room not being read: one more unread. */
export function countUnread(message) {
  const mine = message.sender && message.sender.id === ME.id;
  if (mine || message.type === "system") return;
  const room = state.rooms.get(message.room);
  if (!room) return;
  if (message.room === state.current && document.visibilityState === "visible") return;
  upsertRoom({ id: room.id, unread_count: (room.unread_count || 0) + 1, last_message_at: message.created_at });
}
