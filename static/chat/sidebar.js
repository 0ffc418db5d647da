// The sidebar's forms: a new room, a new direct message (with username suggestions),
// and browsing public rooms to join.

import { api } from "./api.js";
import { $, el, h, nameOf, showError } from "./dom.js";
import { enterRoom, isMember, loadRooms } from "./rooms.js";
import { ME, state } from "./state.js";

async function createRoom(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $(".form-error", form);
  try {
    const room = await api("POST", "/api/rooms/", {
      name: form.elements.name.value,
      kind: form.elements.private.checked ? "private" : "public",
    });
    showError(error, "");
    form.reset();
    form.closest("details").open = false;
    enterRoom(room);
  } catch (failure) {
    showError(error, failure.message);
  }
}

async function openDirect(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $(".form-error", form);
  const wanted = form.elements.username.value.trim().toLowerCase();
  try {
    const found = await api("GET", `/api/users/?search=${encodeURIComponent(wanted)}&limit=50`);
    const user = found.results.find((u) => u.username.toLowerCase() === wanted);
    if (!user) throw new Error("No user with that username.");
    const room = await api("POST", "/api/direct/", { user_id: user.id });
    showError(error, "");
    form.reset();
    form.closest("details").open = false;
    if (user.is_online) state.online.add(user.id);
    enterRoom(room);
  } catch (failure) {
    showError(error, failure.message);
  }
}

async function suggestUsers(event) {
  const search = event.currentTarget.value.trim();
  if (search.length < 2) return;
  try {
    const found = await api("GET", `/api/users/?search=${encodeURIComponent(search)}&limit=10`);
    $("#user-suggestions").replaceChildren(
      ...found.results.filter((u) => u.id !== ME.id).map((u) => h("option", { value: u.username, label: nameOf(u) })),
    );
  } catch {
    /* suggestions are a convenience */
  }
}

async function browseRooms() {
  const list = el.publicRooms;
  if (!list.hidden) {
    list.hidden = true;
    return;
  }
  await loadRooms();
  const open = [...state.rooms.values()].filter((r) => r.kind === "public" && !isMember(r) && !r.is_archived);
  list.replaceChildren(
    ...(open.length
      ? open.map((room) =>
          h("li", { "data-room-id": room.id },
            h("span", { class: "room-name", text: room.name }),
            h("button", { type: "button", class: "join-button", text: "Join",
              onclick: async () => {
                const joined = await api("POST", `/api/rooms/${room.id}/join/`);
                list.hidden = true;
                enterRoom(joined);
              } })))
      : [h("li", { class: "empty", text: "You are in every public room." })]),
  );
  list.hidden = false;
}

export function initSidebar() {
  $("#new-room-form").addEventListener("submit", createRoom);
  $("#new-direct-form").addEventListener("submit", openDirect);
  $("#new-direct-username").addEventListener("input", suggestUsers);
  $("#browse-rooms").addEventListener("click", browseRooms);
}
