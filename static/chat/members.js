// The member list of the open room, and who is online (the presence dots here and on
// direct rooms in the sidebar).
//
// A big room (more members than one page) lists the users present, a page at a time
// (`/members/?online=true`, cursor-paged), with "and N more"; `room_users` and
// `room_presence` frames carry how many are present (`count`), beyond the capped list.

import { api } from "./api.js";
import { $, avatar, el, h, nameOf } from "./dom.js";
import { renderRoomList } from "./rooms.js";
import { state } from "./state.js";

const PAGE = 100;

/** A room whose presence the server caps (`room_users` lists fewer than `count`) or
 *  batches (`room_presence`), or too big to list whole: the panel shows who is present. */
function isBig(room) {
  return Boolean(room) && ((room.member_count || 0) > PAGE || state.bigRooms.has(room.id));
}

function presentMembers(roomId) {
  return (state.presentUsers.get(roomId) || []).map((user) => ({ user, role: null, is_online: true }));
}

export async function loadMembers(roomId) {
  const room = state.rooms.get(roomId);
  if (isBig(room)) {
    // Who the server listed as present; the rest a page at a time ("and N more").
    state.memberList = presentMembers(roomId);
    state.memberNext = `/api/rooms/${roomId}/members/?online=true&limit=${PAGE}`;
    renderMembers();
    return;
  }
  try {
    const page = await api("GET", `/api/rooms/${roomId}/members/?limit=${PAGE}`);
    if (roomId !== state.current || isBig(state.rooms.get(roomId))) return;
    for (const member of page.results) {
      if (member.is_online) state.online.add(member.user.id);
    }
    state.memberList = page.results;
    state.memberNext = page.next || null;
    renderMembers();
  } catch {
    if (roomId !== state.current) return;
    state.memberList = [];
    state.memberNext = null;
    renderMembers();
  }
}

/** `room_users {room, users, count}`: `users` may be capped below `count`. */
export function noteRoomUsers(frame) {
  for (const user of frame.users) state.online.add(user.id);
  const count = typeof frame.count === "number" ? frame.count : frame.users.length;
  state.present.set(frame.room, count);
  state.presentUsers.set(frame.room, frame.users);
  const wasBig = state.bigRooms.has(frame.room);
  if (count > frame.users.length) state.bigRooms.add(frame.room);
  if (frame.room === state.current && state.bigRooms.has(frame.room) && !wasBig) loadMembers(frame.room);
  else renderMembers();
}

async function loadMoreMembers() {
  const roomId = state.current;
  const next = state.memberNext;
  if (!next) return;
  state.memberNext = null;
  try {
    const page = await api("GET", next);
    if (roomId !== state.current) return;
    const known = new Set(state.memberList.map((m) => m.user.id));
    for (const member of page.results) {
      if (member.is_online) state.online.add(member.user.id);
      if (!known.has(member.user.id)) state.memberList.push(member);
    }
    state.memberNext = page.next || null;
  } catch {
    state.memberNext = next; // try again on the next click
  }
  renderMembers();
}

/** Whether the open room's member list already has this user. */
export function isListedMember(userId) {
  return state.memberList.some((m) => m.user.id === userId);
}

export function renderMembers() {
  const room = state.rooms.get(state.current);
  const members = state.memberList.slice().sort((a, b) =>
    Number(state.online.has(b.user.id)) - Number(state.online.has(a.user.id)) ||
    nameOf(a.user).localeCompare(nameOf(b.user)));
  el.members.replaceChildren(
    ...members.map((m) =>
      h("li", { "data-user-id": m.user.id },
        h("span", { class: "member-avatar" }, avatar(m.user),
          h("span", { class: `presence-dot${state.online.has(m.user.id) ? " online" : ""}`,
            "aria-label": state.online.has(m.user.id) ? "online" : "offline" })),
        h("span", { class: "member-name", text: nameOf(m.user) }),
        m.user.is_guest ? h("span", { class: "guest-tag", text: "guest" }) : null,
        m.role && m.role !== "member" ? h("span", { class: "role", text: m.role }) : null)),
  );
  const present = state.present.get(state.current);
  const total = isBig(room) ? Math.max(present ?? 0, members.length) : room ? room.member_count || members.length : 0;
  $("#member-count").textContent = room
    ? isBig(room) ? `· ${total} online` : `· ${total}`
    : "";
  const more = $("#more-members");
  const rest = Math.max(0, (isBig(room) ? total : (room && room.member_count) || 0) - members.length);
  more.hidden = !state.memberNext || rest === 0;
  more.textContent = `and ${rest} more`;
}

/** A big room's batched presence: `{room, joined: [UserBrief], left: [id], count}`. */
export function applyPresence(frame) {
  for (const user of frame.joined || []) state.online.add(user.id);
  for (const id of frame.left || []) state.online.delete(id);
  if (typeof frame.count === "number") state.present.set(frame.room, frame.count);
  const left = new Set(frame.left || []);
  const listed = (state.presentUsers.get(frame.room) || []).filter((u) => !left.has(u.id));
  state.presentUsers.set(frame.room, listed);
  const wasBig = state.bigRooms.has(frame.room);
  state.bigRooms.add(frame.room);
  if (frame.room === state.current) {
    if (!wasBig) {
      loadMembers(frame.room);
    } else {
      state.memberList = state.memberList.filter((m) => !left.has(m.user.id));
      for (const user of frame.joined || []) {
        if (state.memberList.length < PAGE * 5 && !isListedMember(user.id)) {
          state.memberList.push({ user, role: null, is_online: true });
        }
      }
    }
  }
  renderMembers();
  renderRoomList();
}

export function setOnline(userId, online) {
  if (online) state.online.add(userId);
  else state.online.delete(userId);
  renderMembers();
  renderRoomList();
}

export function initMembers() {
  $("#more-members").addEventListener("click", loadMoreMembers);
}
