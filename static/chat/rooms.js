// The room list in the sidebar: labels, unread and mention badges, presence dots and
// avatars of direct rooms, and opening a room. Rooms are told apart by their fields
// (`kind`, `peer`, `is_general`), never by their display names.

import { api } from "./api.js";
import { renderTyping } from "./composer.js";
import { avatar, el, h, nameOf } from "./dom.js";
import { icon } from "./icons.js";
import { renderReplyBanner } from "./message-actions.js";
import { loadHistory, renderMessages } from "./messages.js";
import { loadMembers } from "./members.js";
import { setTitle, updateBadges } from "./notify.js";
import { joinRoom, scheduleRead, socketReady } from "./socket.js";
import { ME, state } from "./state.js";

const NARROW = window.matchMedia("(max-width: 700px)");

/** A direct room is shown as its peer (yourself in a room with yourself). */
export function roomLabel(room) {
  if (room.kind !== "direct") return room.name;
  return room.peer ? nameOf(room.peer) : room.name;
}

export function isMember(room) {
  return room.my_role !== null && room.my_role !== undefined;
}

/** Owners and admins manage a room (the API decides; the page mirrors it). */
export function canManage(room) {
  return Boolean(room) && (room.my_role === "owner" || room.my_role === "admin");
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

/** The user's rooms in the sidebar's order: rooms by name, then direct rooms by name. */
export function sidebarOrder() {
  const rooms = [...state.rooms.values()].filter(isMember);
  const byName = (a, b) => roomLabel(a).localeCompare(roomLabel(b));
  return [
    ...rooms.filter((r) => r.kind !== "direct").sort(byName),
    ...rooms.filter((r) => r.kind === "direct").sort(byName),
  ];
}

export function renderRoomList() {
  const rooms = sidebarOrder();
  el.rooms.replaceChildren(...rooms.filter((r) => r.kind !== "direct").map(roomItem));
  el.directs.replaceChildren(...rooms.filter((r) => r.kind === "direct").map(roomItem));
  updateBadges();
}

function roomMark(room) {
  if (room.kind === "direct") {
    const peer = room.peer || { id: room.peer_id, username: room.name };
    const online = state.online.has(room.peer_id);
    return h("span", { class: "dm-avatar" },
      avatar(peer),
      h("span", { class: `presence-dot${online ? " online" : ""}`, "aria-label": online ? "online" : "offline" }));
  }
  return h("span", { class: "room-hash", "aria-hidden": "true" }, icon(room.kind === "private" ? "lock" : "hash"));
}

function roomItem(room) {
  // A muted room shows no unread badge, only mentions (SPEC 11).
  const unread = room.muted ? 0 : room.unread_count || 0;
  const mentions = room.mention_count || 0;
  const item = h(
    "li",
    {
      "data-room-id": room.id,
      class: [room.id === state.current ? "active" : "", unread || mentions ? "has-unread" : "",
        room.muted ? "muted" : "", room.is_archived ? "archived" : ""].filter(Boolean).join(" "),
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
    roomMark(room),
    h("span", { class: "room-name", text: roomLabel(room) }),
    room.muted ? h("span", { class: "muted-mark", title: "Muted" }, icon("bell-off", "muted")) : null,
    h("span", { class: "mention-badge", text: `@${mentions}`, hidden: !mentions,
      "aria-label": `${mentions} mention${mentions === 1 ? "" : "s"}` }),
    h("span", { class: "unread-badge", text: String(unread), hidden: !unread, "aria-label": `${unread} unread` }),
  );
  return item;
}

/** A room as the REST API answered it: its counts are as of its `pos`, so a message the
 *  page learns of later (a replay after a reconnect) is counted only if it is newer. */
function fromServer(room) {
  return { ...room, countedPos: room.pos ?? 0 };
}

export async function loadRooms() {
  let url = "/api/rooms/?limit=200";
  const seen = new Map();
  while (url) {
    const page = await api("GET", url);
    for (const room of page.results) seen.set(room.id, fromServer(room));
    url = page.next;
  }
  for (const [id, room] of seen) state.rooms.set(id, { ...state.rooms.get(id), ...room });
  const gone = [...state.rooms.keys()].filter((id) => !seen.has(id)); // deleted, or no longer visible
  for (const id of gone) forgetRoom(id);
  renderRoomList();
}

/** Rooms the user was added to while this page was not connected, when the server does
 *  not replay the user's stream: reload the list and join the new ones. */
export async function refreshRooms() {
  if (!state.authenticated) return;
  const known = new Set([...state.rooms.values()].filter(isMember).map((r) => r.id));
  try {
    await loadRooms();
  } catch {
    return;
  }
  for (const room of state.rooms.values()) {
    if (isMember(room) && !known.has(room.id) && socketReady()) joinRoom(room.id);
  }
  if (state.current && state.rooms.has(state.current)) showRoomState(state.rooms.get(state.current));
}

/** Fetch one room again (after a system notice: renamed, archived…) and show it. */
export async function reloadRoom(roomId) {
  try {
    upsertRoom(fromServer(await api("GET", `/api/rooms/${roomId}/`)));
  } catch {
    /* gone or not visible: the user stream says so */
  }
}

export function upsertRoom(room) {
  const merged = { ...state.rooms.get(room.id), ...room };
  state.rooms.set(room.id, merged);
  renderRoomList();
  if (room.id === state.current) showRoomState(merged);
}

/** A room the user joined or made from this page: list it, subscribe to it, open it. */
export function enterRoom(room) {
  upsertRoom(fromServer(room));
  if (socketReady()) joinRoom(room.id);
  openRoom(room.id);
}

/** The open room's header and composer, as its state now is (renamed, archived live). */
export function showRoomState(room) {
  el.title.textContent = roomLabel(room);
  el.description.textContent = room.kind === "direct" ? "" : room.description || "";
  setTitle(roomLabel(room));
  const readOnly = Boolean(room.is_archived) || !isMember(room);
  el.input.disabled = readOnly;
  if (el.sendButton) el.sendButton.disabled = readOnly;
  el.composer.classList.toggle("read-only", readOnly);
  el.input.placeholder = room.is_archived
    ? "This room is archived and read-only."
    : NARROW.matches ? "Write a message…" : "Write a message… (Enter sends, Shift+Enter for a new line)";
  if (el.settingsButton) el.settingsButton.hidden = !isMember(room);
  document.dispatchEvent(new CustomEvent("chat:room-state", { detail: { room } }));
}

export async function openRoom(roomId, { focus = true } = {}) {
  const room = state.rooms.get(roomId);
  if (!room) return;
  const switched = state.current !== roomId;
  state.current = roomId;
  state.replyTo = null;
  renderReplyBanner();
  showRoomState(room);
  document.dispatchEvent(new CustomEvent("chat:close-drawers"));
  renderRoomList();
  renderMessages();
  renderTyping();
  // The composer takes the keyboard (not on a phone: its keyboard would cover the room).
  if (focus && !NARROW.matches && !el.input.disabled) el.input.focus();
  if (!state.history.get(roomId)?.loaded) await loadHistory(roomId);
  if (switched || !state.memberList.length) loadMembers(roomId);
  scheduleRead();
}

/** The user left the room or was removed: a public room stays browsable. */
export function removedFrom(roomId) {
  const room = state.rooms.get(roomId);
  if (!room || room.kind !== "public") {
    forgetRoom(roomId);
    return;
  }
  upsertRoom({ id: roomId, my_role: null, unread_count: 0, mention_count: 0 });
  if (state.current === roomId) {
    const next = defaultRoom();
    if (next) openRoom(next.id);
  }
}

/** The room is gone (deleted): idempotent, it may be told twice. */
export function forgetRoom(roomId) {
  state.rooms.delete(roomId);
  state.lastPos.delete(roomId);
  state.history.delete(roomId);
  state.messages.delete(roomId);
  renderRoomList();
  if (state.current === roomId) {
    state.current = null;
    const next = defaultRoom();
    if (next) openRoom(next.id);
  }
}

function mentionsMe(message) {
  return Boolean(message.mentions_room) || (Array.isArray(message.mentions) && message.mentions.includes(ME.id));
}

/** A new message: one more unread (and mention) unless it is the reader's own, a notice,
 *  in the room being read, or already in the counts the server gave. True when counted. */
export function countUnread(message) {
  const room = state.rooms.get(message.room);
  if (!room) return false;
  // The counts are as of `countedPos`: a replay after a reconnect repeats messages the
  // room list already counted (the badge showed 2 for one missed message).
  if (typeof message.seq === "number" && message.seq <= (room.countedPos ?? 0)) return false;
  const countedPos = Math.max(room.countedPos ?? 0, message.seq ?? 0);
  const mine = message.sender && message.sender.id === ME.id;
  const reading = message.room === state.current && document.visibilityState === "visible";
  if (mine || message.type === "system" || reading || message.deleted) {
    state.rooms.set(room.id, { ...room, countedPos });
    return false;
  }
  upsertRoom({
    id: room.id,
    countedPos,
    unread_count: (room.unread_count || 0) + 1,
    mention_count: (room.mention_count || 0) + (mentionsMe(message) ? 1 : 0),
    last_message_at: message.created_at,
  });
  return true;
}

export { mentionsMe };
