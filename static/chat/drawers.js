// The phone layout's drawers: the room list (left) and the members (right) slide over the
// conversation. Each closes with its close button, Escape, or a tap outside it (the
// backdrop); opening one moves the focus into it, closing it gives the focus back.

import { $, el } from "./dom.js";

const DRAWERS = {
  sidebar: { className: "show-sidebar", toggle: "#toggle-sidebar", close: "#close-sidebar" },
  members: { className: "show-members", toggle: "#toggle-members", close: "#close-members" },
};

export function openDrawer(name) {
  closeDrawers({ restoreFocus: false });
  const drawer = DRAWERS[name];
  el.app.classList.add(drawer.className);
  $(drawer.toggle).setAttribute("aria-expanded", "true");
  $("#drawer-backdrop").hidden = false;
  $(drawer.close).focus();
}

/** Close whatever drawer is open; true if one was. */
export function closeDrawers({ restoreFocus = true } = {}) {
  let closed = false;
  for (const drawer of Object.values(DRAWERS)) {
    if (!el.app.classList.contains(drawer.className)) continue;
    el.app.classList.remove(drawer.className);
    const toggle = $(drawer.toggle);
    toggle.setAttribute("aria-expanded", "false");
    if (restoreFocus && toggle.offsetParent !== null) toggle.focus();
    closed = true;
  }
  $("#drawer-backdrop").hidden = true;
  return closed;
}

export function initDrawers() {
  for (const [name, drawer] of Object.entries(DRAWERS)) {
    $(drawer.toggle).addEventListener("click", () => {
      if (el.app.classList.contains(drawer.className)) closeDrawers();
      else openDrawer(name);
    });
    $(drawer.close).addEventListener("click", () => closeDrawers());
  }
  $("#drawer-backdrop").addEventListener("click", () => closeDrawers());
  // Picking a room closes the drawer it was picked in (rooms.js says when).
  document.addEventListener("chat:close-drawers", () => closeDrawers({ restoreFocus: false }));
}
