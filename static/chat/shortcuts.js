// Keyboard shortcuts (listed in the profile dialog and the README):
//   Ctrl/Cmd+K   the quick room switcher (type, arrows, Enter)
//   Alt+Up/Down  the previous / next room of the sidebar
//   /            focus the search box (when not typing somewhere)
//   Escape       close the search results or a drawer (a <dialog> closes itself)

import { $, h } from "./dom.js";
import { closeDrawers } from "./drawers.js";
import { openRoom, roomLabel, sidebarOrder } from "./rooms.js";
import { closeSearch, focusSearch } from "./search.js";
import { state } from "./state.js";

const switcher = () => $("#switcher");
let choices = [];
let chosen = 0;

function typing(target) {
  return target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

function renderSwitcher() {
  const wanted = $("#switcher-input").value.trim().toLowerCase();
  choices = sidebarOrder().filter((room) => roomLabel(room).toLowerCase().includes(wanted));
  chosen = Math.min(chosen, Math.max(0, choices.length - 1));
  $("#switcher-list").replaceChildren(
    ...choices.map((room, index) =>
      h("li", { role: "option", id: `switch-${room.id}`, "data-room-id": room.id,
        "aria-selected": index === chosen ? "true" : "false",
        class: index === chosen ? "chosen" : "",
        text: roomLabel(room),
        onclick: () => pick(room.id) })),
  );
  $("#switcher-input").setAttribute("aria-activedescendant", choices[chosen] ? `switch-${choices[chosen].id}` : "");
}

function pick(roomId) {
  switcher().close();
  openRoom(roomId);
}

export function openSwitcher() {
  $("#switcher-input").value = "";
  chosen = 0;
  renderSwitcher();
  if (!switcher().open) switcher().showModal();
  $("#switcher-input").focus();
}

/** Alt+Up/Down: the room before or after the open one, in the sidebar's order. */
function stepRoom(step) {
  const rooms = sidebarOrder();
  if (!rooms.length) return;
  const at = rooms.findIndex((room) => room.id === state.current);
  const next = rooms[(at + step + rooms.length) % rooms.length];
  if (next && next.id !== state.current) openRoom(next.id);
}

function onKey(event) {
  const mod = event.ctrlKey || event.metaKey;
  if (mod && !event.altKey && !event.shiftKey && event.key.toLowerCase() === "k") {
    event.preventDefault();
    if (switcher().open) switcher().close();
    else openSwitcher();
    return;
  }
  if (event.altKey && !mod && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
    if (document.querySelector("dialog[open]")) return;
    event.preventDefault();
    stepRoom(event.key === "ArrowUp" ? -1 : 1);
    return;
  }
  if (event.key === "/" && !mod && !event.altKey && !typing(event.target) && !document.querySelector("dialog[open]")) {
    event.preventDefault();
    focusSearch();
    return;
  }
  if (event.key === "Escape" && !document.querySelector("dialog[open]")) {
    if (closeSearch() || closeDrawers()) event.preventDefault();
  }
}

export function initShortcuts() {
  document.addEventListener("keydown", onKey);
  $("#switcher-input").addEventListener("input", () => {
    chosen = 0;
    renderSwitcher();
  });
  $("#switcher-input").addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      chosen = (chosen + step + choices.length) % Math.max(1, choices.length);
      renderSwitcher();
    } else if (event.key === "Enter") {
      event.preventDefault();
      if (choices[chosen]) pick(choices[chosen].id);
    }
  });
  switcher().addEventListener("click", (event) => {
    if (event.target === switcher()) switcher().close();
  });
}
