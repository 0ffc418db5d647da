// The member list of the open room, and who is online (the presence dots here and on
// direct rooms in the sidebar).

import { api } from "./api.js";
import { el, h, nameOf } from "./dom.js";
import { renderRoomList } from "./rooms.js";
import { state } from "./state.js";

export async function loadMembers(roomId) {
  try {
    const page = await api("GET", `/api/rooms/${roomId}/members/?limit=200`);
    if (roomId !== state.current) return;
    for (const member of page.results) {
      if (member.is_online) state.online.add(member.user.id);
    }
    state.memberList = page.results;
    renderMembers();
  } catch {
    el.members.replaceChildren();
  }
}

/** Whether the open room's member list already has this user. */
export function isListedMember(userId) {
  return state.memberList.some((m) => m.user.id === userId);
}

export function renderMembers() {
  const members = state.memberList.slice().sort((a, b) =>
    Number(state.online.has(b.user.id)) - Number(state.online.has(a.user.id)) ||
    nameOf(a.user).localeCompare(nameOf(b.user)));
  el.members.replaceChildren(
    ...members.map((m) =>
      h("li", { "data-user-id": m.user.id },
        h("span", { class: `presence-dot${state.online.has(m.user.id) ? " online" : ""}`,
          "aria-label": state.online.has(m.user.id) ? "online" : "offline" }),
        h("span", { class: "member-name", text: nameOf(m.user) }),
        m.user.is_guest ? h("span", { class: "guest-tag", text: "guest" }) : null,
        m.role !== "member" ? h("span", { class: "role", text: m.role }) : null)),
  );
}

export function setOnline(userId, online) {
  if (online) state.online.add(userId);
  else state.online.delete(userId);
  renderMembers();
  renderRoomList();
}
