// Searching messages (`GET /api/messages/search/`): results under the room header, each
// with its room, sender, date and a text snippet; picking one opens the room at that
// message (messages.js `showMessage` loads the history around it).

import { api } from "./api.js";
import { $, h, nameOf } from "./dom.js";
import * as messages from "./messages.js";
import { openRoom, roomLabel } from "./rooms.js";
import { state } from "./state.js";

const SNIPPET = 160; // characters around the first match

const form = () => $("#search-form");
const input = () => $("#search-input");
const panel = () => $("#search-results");
let searchSerial = 0;
let nextPage = null;

/** Up to SNIPPET characters of `text` around the first word of `query` (plain text). */
function snippet(text, query) {
  const flat = String(text || "").replace(/\s+/g, " ").trim();
  if (flat.length <= SNIPPET) return flat;
  const word = query.trim().split(/\s+/)[0] || "";
  const at = Math.max(0, flat.toLowerCase().indexOf(word.toLowerCase()));
  const start = Math.max(0, Math.min(at - 40, flat.length - SNIPPET));
  return `${start ? "…" : ""}${flat.slice(start, start + SNIPPET)}${start + SNIPPET < flat.length ? "…" : ""}`;
}

function when(iso) {
  const date = new Date(iso);
  return date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

function resultItem(message, query) {
  const room = state.rooms.get(message.room);
  return h("li", {},
    h("button", { type: "button", class: "search-result", "data-message-id": message.id, "data-room-id": message.room,
      onclick: () => jumpTo(message.room, message.id) },
      h("span", { class: "result-meta" },
        h("span", { class: "result-room", text: room ? roomLabel(room) : `Room ${message.room}` }),
        h("span", { class: "result-sender", text: nameOf(message.sender) }),
        h("time", { class: "result-date", datetime: message.created_at, text: when(message.created_at) })),
      h("span", { class: "result-snippet", text: snippet(message.content, query) })));
}

async function runSearch(query, { more = false } = {}) {
  const serial = ++searchSerial;
  const box = panel();
  const url = more && nextPage ? nextPage : `/api/messages/search/?q=${encodeURIComponent(query)}&limit=20`;
  if (!more) box.replaceChildren(h("p", { class: "search-note", text: "Searching…" }));
  box.hidden = false;
  try {
    const page = await api("GET", url);
    if (serial !== searchSerial) return; // a newer search is under way
    nextPage = page.next || null;
    let list = box.querySelector("ul.search-list");
    if (!more || !list) {
      list = h("ul", { class: "search-list" });
      box.replaceChildren(
        h("div", { class: "search-head" },
          h("span", { text: page.results.length ? `Results for “${query}”` : `Nothing found for “${query}”` }),
          h("button", { type: "button", class: "link-button", text: "Close", onclick: closeSearch })),
        list);
    }
    list.append(...page.results.map((message) => resultItem(message, query)));
    box.querySelector(".search-more")?.remove();
    if (nextPage) {
      box.append(h("button", { type: "button", class: "link-button search-more", text: "More results",
        onclick: () => runSearch(query, { more: true }) }));
    }
  } catch (failure) {
    if (serial === searchSerial) box.replaceChildren(h("p", { class: "form-error", text: failure.message }));
  }
}

async function jumpTo(roomId, messageId) {
  closeSearch();
  if (!state.rooms.has(roomId)) return;
  if (typeof messages.showMessage === "function") {
    await messages.showMessage(roomId, messageId); // opens the room, loads around the message
  } else {
    await openRoom(roomId);
  }
}

/** Close the results; true if they were open. */
export function closeSearch() {
  const box = panel();
  const wasOpen = !box.hidden;
  box.hidden = true;
  document.querySelector(".room-head").classList.remove("show-search");
  return wasOpen;
}

export function focusSearch() {
  document.querySelector(".room-head").classList.add("show-search");
  input().focus();
  input().select();
}

export function initSearch() {
  form().addEventListener("submit", (event) => {
    event.preventDefault();
    const query = input().value.trim();
    if (query) runSearch(query);
  });
  input().addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      closeSearch();
      input().blur();
    } else if (event.key === "ArrowDown") {
      const first = panel().querySelector(".search-result");
      if (first) {
        event.preventDefault();
        first.focus();
      }
    }
  });
  panel().addEventListener("keydown", (event) => {
    if (!["ArrowDown", "ArrowUp"].includes(event.key)) return;
    const items = [...panel().querySelectorAll(".search-result")];
    const at = items.indexOf(document.activeElement);
    if (at < 0) return;
    event.preventDefault();
    const next = items[at + (event.key === "ArrowDown" ? 1 : -1)];
    if (next) next.focus();
    else if (event.key === "ArrowUp") input().focus();
  });
  $("#search-toggle").addEventListener("click", () => {
    const head = document.querySelector(".room-head");
    if (head.classList.contains("show-search")) closeSearch();
    else focusSearch();
  });
}
