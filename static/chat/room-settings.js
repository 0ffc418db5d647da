// The room settings dialog (a native <dialog>: Escape closes it, focus stays inside):
// mute, name and topic, members (invite with suggestions, roles, remove), archive, delete
// and leave. It shows only what the user's role allows; the API enforces the same rules.

import { api } from "./api.js";
import { $, avatar, h, nameOf, showError } from "./dom.js";
import { canManage, isMember, removedFrom, roomLabel, upsertRoom } from "./rooms.js";
import { ME, state } from "./state.js";

const dialog = () => $("#room-settings");
const body = () => $("#room-settings-body");
let roomId = null;
let shownKey = ""; // what the open dialog shows of its room

function settingsKey(room) {
  return JSON.stringify([room.name, room.description, room.is_archived, room.my_role, room.muted]);
}

function section(title, ...children) {
  const id = `rs-${title.toLowerCase().replace(/\W+/g, "-")}`;
  return h("section", { "aria-labelledby": id }, h("h3", { id, text: title }), ...children);
}

/** Run `action`; a failure shows in the section's error line. */
async function attempt(errorNode, action) {
  showError(errorNode, "");
  try {
    await action();
    return true;
  } catch (failure) {
    showError(errorNode, failure.message);
    return false;
  }
}

function muteSection(room) {
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const box = h("input", { type: "checkbox", id: "mute-toggle", checked: room.muted ? true : null });
  box.addEventListener("change", () =>
    attempt(error, async () => {
      const answer = await api("PATCH", `/api/rooms/${room.id}/membership/`, { muted: box.checked });
      upsertRoom({ id: room.id, muted: answer.muted, unread_count: answer.unread_count, mention_count: answer.mention_count });
    }).then((ok) => {
      if (!ok) box.checked = !box.checked;
    }));
  return section("Notifications",
    h("label", { class: "check" }, box, " Mute this room (only mentions of you count and notify)"), error);
}

function aboutSection(room) {
  if (!canManage(room) || room.kind === "direct") {
    return room.description ? section("Topic", h("p", { class: "topic", text: room.description })) : null;
  }
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const name = h("input", { id: "rs-name", name: "name", maxlength: 80, required: true, value: room.name });
  const topic = h("textarea", { id: "rs-topic", name: "description", maxlength: 500, rows: 2 });
  topic.value = room.description || "";
  const form = h("form", { class: "stack", id: "room-about-form" },
    h("label", { for: "rs-name", text: "Name" }), name,
    h("label", { for: "rs-topic", text: "Topic" }), topic,
    h("button", { type: "submit", text: "Save" }), error);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(error, async () => {
      const answer = await api("PATCH", `/api/rooms/${room.id}/`, { name: name.value, description: topic.value });
      upsertRoom({ id: room.id, name: answer.name, description: answer.description });
    });
  });
  return section("Name and topic", form);
}

function memberRow(room, member, error) {
  const manage = canManage(room) && room.kind !== "direct";
  const self = member.user.id === ME.id;
  let controls = null;
  if (manage && (member.role !== "owner" || room.my_role === "owner")) {
    const roles = room.my_role === "owner" ? ["member", "admin", "owner"] : ["member", "admin"];
    const select = h("select", { "aria-label": `Role of ${nameOf(member.user)}`, class: "role-select" },
      ...roles.map((role) => h("option", { value: role, text: role, selected: role === member.role ? true : null })));
    select.addEventListener("change", () =>
      attempt(error, () => api("POST", `/api/rooms/${room.id}/members/`, { user_id: member.user.id, role: select.value }))
        .then(() => fillMembers(room, error)));
    const remove = self ? null : h("button", { type: "button", class: "secondary danger", text: "Remove",
      "aria-label": `Remove ${nameOf(member.user)}`,
      onclick: () => attempt(error, () => api("DELETE", `/api/rooms/${room.id}/members/${member.user.id}/`))
        .then(() => fillMembers(room, error)) });
    controls = h("span", { class: "member-controls" }, select, remove);
  } else if (member.role !== "member") {
    controls = h("span", { class: "role", text: member.role });
  }
  return h("li", { "data-user-id": member.user.id }, avatar(member.user),
    h("span", { class: "member-name", text: nameOf(member.user) + (self ? " (you)" : "") }), controls);
}

function inviteForm(room, error) {
  const input = h("input", { id: "invite-input", name: "username", list: "invite-suggestions", autocomplete: "off",
    placeholder: "Username", required: true, maxlength: 150 });
  const suggestions = h("datalist", { id: "invite-suggestions" });
  let found = [];
  input.addEventListener("input", async () => {
    const search = input.value.trim();
    if (search.length < 1) return;
    try {
      const page = await api("GET", `/api/users/?search=${encodeURIComponent(search)}&limit=10`);
      found = page.results;
      suggestions.replaceChildren(...found.map((u) => h("option", { value: u.username, label: nameOf(u) })));
    } catch {
      /* suggestions are a convenience */
    }
  });
  const form = h("form", { class: "invite-form", id: "invite-form" },
    h("label", { for: "invite-input", class: "visually-hidden", text: "Invite by username" }),
    input, suggestions, h("button", { type: "submit", text: "Invite" }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const wanted = input.value.trim().toLowerCase();
    attempt(error, async () => {
      let user = found.find((u) => u.username.toLowerCase() === wanted);
      if (!user) {
        const page = await api("GET", `/api/users/?search=${encodeURIComponent(wanted)}&limit=50`);
        user = page.results.find((u) => u.username.toLowerCase() === wanted);
      }
      if (!user) throw new Error("No user with that username.");
      await api("POST", `/api/rooms/${room.id}/members/`, { user_id: user.id });
      input.value = "";
    }).then((ok) => ok && fillMembers(room, error));
  });
  return form;
}

/** The member list of the dialog, filled (again) in place: the rest of the dialog, and
 *  what is typed in it, stays. */
async function fillMembers(room, error) {
  const list = $("#settings-members");
  if (!list) return;
  try {
    const page = await api("GET", `/api/rooms/${room.id}/members/?limit=100`);
    const current = state.rooms.get(room.id) || room;
    const rows = page.results.map((m) => memberRow(current, m, error));
    if (page.next) rows.push(h("li", { class: "empty", text: `and ${(current.member_count || 0) - page.results.length} more` }));
    list.replaceChildren(...rows);
  } catch (failure) {
    showError(error, failure.message);
  }
}

function membersSection(room) {
  if (room.kind === "direct") return null;
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const list = h("ul", { class: "settings-members", id: "settings-members" });
  const content = [];
  if (canManage(room) && !room.is_archived) content.push(inviteForm(room, error));
  content.push(error, list);
  return [section("Members", ...content), error];
}

function dangerSection(room) {
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const buttons = [];
  if (canManage(room) && room.kind !== "direct") {
    buttons.push(h("button", { type: "button", class: "secondary", id: "archive-button",
      text: room.is_archived ? "Unarchive" : "Archive",
      onclick: () => attempt(error, async () => {
        const archived = Boolean(state.rooms.get(room.id)?.is_archived);
        const answer = await api("PATCH", `/api/rooms/${room.id}/`, { is_archived: !archived });
        upsertRoom({ id: room.id, is_archived: answer.is_archived }); // redraws the dialog
      }) }));
  }
  if (room.kind !== "direct" && !room.is_general) {
    buttons.push(h("button", { type: "button", class: "secondary", id: "leave-button", text: "Leave room",
      onclick: () => attempt(error, async () => {
        await api("POST", `/api/rooms/${room.id}/leave/`);
        dialog().close();
        removedFrom(room.id);
      }) }));
  }
  if (room.my_role === "owner" && !room.is_general && room.kind !== "direct") {
    const confirm = h("div", { class: "confirm", hidden: true },
      h("p", { text: `Delete ${roomLabel(room)} and all its messages? This cannot be undone.` }),
      h("button", { type: "button", class: "danger", id: "confirm-delete", text: "Delete for good",
        onclick: () => attempt(error, async () => {
          await api("DELETE", `/api/rooms/${room.id}/`);
          dialog().close();
          removedFrom(room.id);
        }) }),
      h("button", { type: "button", class: "secondary", text: "Cancel",
        onclick: () => { confirm.hidden = true; } }));
    buttons.push(h("button", { type: "button", class: "secondary danger", id: "delete-button", text: "Delete room…",
      onclick: () => {
        confirm.hidden = false;
        confirm.querySelector("#confirm-delete").focus();
      } }), confirm);
  }
  return buttons.length ? section("Room", h("div", { class: "danger-zone" }, ...buttons), error) : null;
}

async function renderBody() {
  const room = state.rooms.get(roomId);
  if (!room || !isMember(room)) {
    if (dialog().open) dialog().close();
    return;
  }
  shownKey = settingsKey(room);
  $("#room-settings-title").textContent = `${roomLabel(room)}: settings`;
  const [members, membersError] = membersSection(room) || [null, null];
  body().replaceChildren(...[muteSection(room), aboutSection(room), members, dangerSection(room)].filter(Boolean));
  if (members) await fillMembers(room, membersError);
}

export async function openRoomSettings() {
  roomId = state.current;
  if (!roomId) return;
  body().replaceChildren();
  await renderBody();
  if (!dialog().open) dialog().showModal();
}

export function initRoomSettings() {
  $("#room-settings-button").addEventListener("click", openRoomSettings);
  dialog().querySelector(".dialog-close").addEventListener("click", () => dialog().close());
  // A tap on the backdrop (outside the dialog's box) closes it too.
  dialog().addEventListener("click", (event) => {
    if (event.target === dialog()) dialog().close();
  });
  // The room changed while the dialog is open (renamed elsewhere, role changed): redraw,
  // unless only its counts changed (a redraw would take the focus away).
  document.addEventListener("chat:room-state", (event) => {
    const room = event.detail.room;
    if (!dialog().open || room.id !== roomId) return;
    const key = settingsKey(room);
    if (key !== shownKey) renderBody();
  });
}
