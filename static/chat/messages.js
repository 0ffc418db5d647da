// The message pane: the messages the page knows of each room (newest state wins, by
// stream position), history pages (older on scroll, the page around a message for a jump,
// newer ones back to the present), and the list as a team's chat shows it: day
// separators, one name and avatar per group, the "new messages" divider, and the
// reader's place kept (new messages never yank a reader who scrolled up; a button jumps
// to the latest and counts what is below). How one message looks: message-view.js.

import { api } from "./api.js";
import { el, h } from "./dom.js";
import { icon } from "./icons.js";
import { leadOf, nextMessage, relink } from "./message-groups.js";
import { initMessageKeys } from "./message-keys.js";
import { messageElement } from "./message-view.js";
import { ME, state } from "./state.js";

const PAGE = 50; // messages per history page
const NEAR_BOTTOM_PX = 48; // this close to the bottom counts as reading the latest
const NEAR_EDGE_PX = 120; // this close to the top (bottom) loads the older (newer) page

// This pane's own view of the open room (not shared: no other module reads it).
const view = {
  room: null, // the room drawn
  pinned: true, // the reader is at the bottom: new content keeps them there
  unread: null, // {seq, count} when the room opened with unread messages: where the divider goes
  seenSeq: 0, // the highest seq that has been on screen
  newAfter: Infinity, // messages after this seq are new (unread when the room opened, or live since)
  jump: null, // the jump-to-latest button
  scheduled: false, // a scroll update is queued for the next frame
};

export function roomMessages(roomId) {
  if (!state.messages.has(roomId)) state.messages.set(roomId, new Map());
  return state.messages.get(roomId);
}

function historyOf(roomId) {
  if (!state.history.has(roomId)) state.history.set(roomId, { hasMore: true, loading: false, loaded: false });
  return state.history.get(roomId);
}

/** Keep the newest state of a message: a change with a higher `pos` wins. True for a
 *  message the page did not know. */
export function storeMessage(message) {
  const messages = roomMessages(message.room);
  const known = messages.get(message.id);
  if (known && known.pos > message.pos) return false;
  messages.set(message.id, message);
  const pending = state.pending.get(message.client_id);
  if (pending && message.sender && message.sender.id === ME.id) {
    state.pending.delete(message.client_id);
    removePendingElement(message.client_id);
  }
  if (message.room === state.current) placeMessage(message);
  return !known;
}

/** The latest page (or, with `before`, the page before that seq). */
export async function loadHistory(roomId, before) {
  const info = historyOf(roomId);
  if (info.loading) return;
  info.loading = true;
  try {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (before) query.set("before", String(before));
    const page = await api("GET", `/api/rooms/${roomId}/messages/?${query}`);
    const box = el.messages;
    const fromBottom = box.scrollHeight - box.scrollTop;
    for (const message of page.results) storeMessage(message);
    info.hasMore = page.has_more;
    info.loaded = true;
    if (page.results.length) info.oldestSeq = Math.min(info.oldestSeq || Infinity, page.results[0].seq);
    if (!state.lastPos.has(roomId)) state.lastPos.set(roomId, page.pos);
    if (roomId === state.current) {
      if (before) box.scrollTop = box.scrollHeight - fromBottom;
      else settleOpened();
    }
  } finally {
    info.loading = false;
  }
}

/** The page of history around `messageId` (for a jump to it). A page apart from what
 *  is loaded replaces it: the pane then holds a window of the past, and scrolling down
 *  (or the jump button) comes back to the present. */
async function loadAround(roomId, messageId) {
  const info = historyOf(roomId);
  const page = await api("GET", `/api/rooms/${roomId}/messages/?around=${messageId}&limit=${PAGE}`);
  const results = page.results || [];
  if (!results.length) return;
  const oldest = results[0];
  const newest = results[results.length - 1];
  const touches = info.loaded && info.oldestSeq && newest.seq >= info.oldestSeq - 1;
  if (!touches) {
    roomMessages(roomId).clear();
    info.hasMoreAfter = Boolean(page.has_more_after);
    info.newest = newest;
    if (roomId === state.current) el.messages.replaceChildren();
  }
  for (const message of results) storeMessage(message);
  if (touches && info.hasMoreAfter && newest.seq > info.newest.seq) info.newest = newest;
  if (!touches || oldest.seq < info.oldestSeq) {
    info.oldestSeq = oldest.seq;
    info.hasMore = Boolean(page.has_more_before);
  }
  info.loaded = true;
}

/** In a window of the past: the messages after it, a page at a time. */
async function loadNewer(roomId) {
  const info = historyOf(roomId);
  if (info.loading || !info.hasMoreAfter || !info.newest) return;
  info.loading = true;
  try {
    const page = await api("GET", `/api/rooms/${roomId}/messages/?around=${info.newest.id}&limit=${PAGE * 2}`);
    const later = (page.results || []).filter((m) => m.seq > info.newest.seq);
    for (const message of later) storeMessage(message);
    if (later.length) info.newest = later[later.length - 1];
    info.hasMoreAfter = Boolean(page.has_more_after) && later.length > 0;
  } finally {
    info.loading = false;
  }
}

/** Back to the present: the latest page, at the bottom. */
async function jumpToLatest() {
  const roomId = state.current;
  const info = historyOf(roomId);
  if (info.hasMoreAfter) {
    roomMessages(roomId).clear();
    state.history.delete(roomId);
    el.messages.replaceChildren();
    await loadHistory(roomId);
  }
  view.pinned = true;
  scrollToBottom();
}

/** Bring message `messageId` of room `roomId` into view and flash it, opening the room
 *  and loading the history around it as needed (reply quotes and search results). */
export async function showMessage(roomId, messageId) {
  if (state.current !== roomId) {
    const { openRoom } = await import("./rooms.js");
    await openRoom(roomId, { focus: false });
  }
  if (!findMessage(messageId)) {
    try {
      await loadAround(roomId, messageId);
    } catch {
      return false;
    }
  }
  const node = findMessage(messageId);
  if (!node || state.current !== roomId) return false;
  view.pinned = false;
  node.scrollIntoView({ block: "center" });
  node.focus({ preventScroll: true });
  node.classList.remove("flash");
  void node.offsetWidth; // restart the animation when it runs again
  node.classList.add("flash");
  setTimeout(() => node.classList.remove("flash"), 2000);
  update();
  return true;
}

function findMessage(messageId) {
  return el.messages.querySelector(`.message[data-message-id="${Number(messageId)}"]`);
}

/** Draw the open room from scratch (opening it, or after a purge). */
export function renderMessages() {
  const roomId = state.current;
  if (roomId !== view.room) opened(roomId);
  const messages = [...roomMessages(roomId).values()].sort((a, b) => a.seq - b.seq);
  el.messages.replaceChildren(...messages.map(messageElement));
  for (const pending of state.pending.values()) {
    if (pending.room === roomId) el.messages.append(messageElement(pending));
  }
  for (const node of el.messages.querySelectorAll(".message")) relink(node);
  if (historyOf(roomId).loaded) settleOpened();
  else scrollToBottom();
}

/** A room opens: where its unread messages start (from what the room list said), once. */
function opened(roomId) {
  view.room = roomId;
  view.pinned = true;
  const room = state.rooms.get(roomId);
  const count = (room && room.unread_count) || 0;
  view.unread = count > 0 ? { count, seq: typeof room.last_read_seq === "number" ? room.last_read_seq : null } : null;
  view.newAfter = Infinity; // until the first page is in: nothing counts as new
}

/** After the first page of an opened room: the divider, and the view on the first unread
 *  message when they do not all fit, else on the latest. */
function settleOpened() {
  const divider = placeDivider();
  const box = el.messages;
  const seqs = [...roomMessages(state.current).values()].map((m) => m.seq);
  view.newAfter = divider ? view.unread.seq : Math.max(0, ...seqs);
  view.seenSeq = 0;
  // (.messages is positioned: offsetTop counts from its top.)
  if (divider && divider.offsetTop > box.scrollHeight - box.clientHeight) {
    scrollToBottom();
  } else if (divider) {
    box.scrollTop = divider.offsetTop - 8;
    view.pinned = distanceFromBottom() < NEAR_BOTTOM_PX;
  } else {
    scrollToBottom();
  }
  update();
}

/** The "new messages" divider before the first unread message, if the room opened with
 *  some and that message is loaded (until then, the room opens at the latest; scrolling
 *  up to it places the divider). Found by the reader's read marker when the page knows
 *  it, else by counting the unread messages back from the latest as the room opened
 *  (what the server counts: others', not system, not deleted). */
function placeDivider() {
  el.messages.querySelector(".unread-divider")?.remove();
  const unread = view.unread;
  if (!unread || view.room !== state.current) return null;
  const nodes = [...el.messages.querySelectorAll(".message[data-seq]")];
  if (!nodes.length) return null;
  const seqOf = (node) => Number(node.dataset.seq);
  const counts = (node) => !node.classList.contains("mine") && !node.classList.contains("system");
  const complete = !historyOf(state.current).hasMore;
  if (unread.upTo === undefined) unread.upTo = seqOf(nodes.at(-1));
  let first = null;
  if (unread.seq !== null) {
    first = nodes.find((node) => seqOf(node) > unread.seq && counts(node)) || null;
    // The oldest loaded, with more unread before it not loaded yet: not the first.
    if (first === nodes[0] && !complete && seqOf(first) - 1 > unread.seq) first = null;
  } else {
    let left = unread.count;
    for (let i = nodes.length - 1; i >= 0 && left > 0; i -= 1) {
      const node = nodes[i];
      if (seqOf(node) <= unread.upTo && counts(node) && !node.classList.contains("deleted")) {
        first = node;
        left -= 1;
      }
    }
    if (left > 0 && !complete) first = null;
    if (first) unread.seq = seqOf(first) - 1;
  }
  if (!first) return null;
  const divider = h("div", { class: "unread-divider", role: "separator", "aria-label": "New messages" },
    h("span", { text: "New messages" }));
  leadOf(first).before(divider);
  relink(first);
  return divider;
}

/** Draw a message in its place by `seq` (pending ones stay last), or redraw it. */
export function placeMessage(message) {
  const box = el.messages;
  const stick = view.pinned;
  const node = messageElement(message);
  const old = findMessage(message.id);
  if (old) {
    if (old.querySelector(".edit-input")) return; // do not pull the editor away
    const focused = old.contains(document.activeElement);
    old.replaceWith(node);
    relink(node);
    relink(nextMessage(node));
    if (focused) node.focus({ preventScroll: true });
  } else {
    let after = null; // the last message before this one
    for (let child = box.lastElementChild; child; child = child.previousElementSibling) {
      if (!child.classList.contains("message") || child.classList.contains("pending")) continue;
      if (Number(child.dataset.seq) < message.seq) {
        after = child;
        break;
      }
    }
    if (after) after.after(node);
    else box.prepend(node);
    relink(node);
    relink(nextMessage(node));
    if (view.unread && !box.querySelector(".unread-divider") && historyOf(message.room).loaded) placeDivider();
  }
  if (stick) scrollToBottom();
  else schedule();
}

/** A message being sent: shown at once (faded), last, with the view at the bottom. */
export function showPending(pending) {
  const node = messageElement(pending);
  el.messages.append(node);
  relink(node);
  view.pinned = true;
  scrollToBottom();
}

export function removePendingElement(clientId) {
  const node = el.messages.querySelector(`.message.pending[data-client-id="${CSS.escape(clientId)}"]`);
  if (!node) return;
  const next = nextMessage(node);
  const lead = leadOf(node);
  if (lead !== node) lead.remove(); // its day separator
  node.remove();
  relink(next);
}

export function scrollToBottom() {
  el.messages.scrollTop = el.messages.scrollHeight;
  view.pinned = true;
  schedule();
}

/** A picture finished loading: at the bottom, stay there. */
export function mediaLoaded() {
  if (view.pinned) scrollToBottom();
}

// ------------------------------------------------------- scrolling, the jump button

function distanceFromBottom() {
  const box = el.messages;
  return box.scrollHeight - box.scrollTop - box.clientHeight;
}

function schedule() {
  if (view.scheduled) return;
  view.scheduled = true;
  requestAnimationFrame(() => {
    view.scheduled = false;
    update();
  });
}

/** What has been seen (the last message whose top is on screen), and the jump button:
 *  shown when the reader is away from the latest, with how many new messages are below. */
function update() {
  const box = el.messages;
  const bottom = box.getBoundingClientRect().bottom;
  let seenNode = null;
  for (let node = box.lastElementChild; node; node = node.previousElementSibling) {
    if (node.classList.contains("message") && node.dataset.seq && node.getBoundingClientRect().top < bottom) {
      seenNode = node;
      break;
    }
  }
  if (seenNode) view.seenSeq = Math.max(view.seenSeq, Number(seenNode.dataset.seq));
  let below = 0;
  const floor = Math.max(view.seenSeq, view.newAfter);
  for (let node = box.lastElementChild; node; node = node.previousElementSibling) {
    if (!node.classList.contains("message") || !node.dataset.seq) continue;
    if (Number(node.dataset.seq) <= floor) break;
    if (!node.classList.contains("mine") && !node.classList.contains("system")) below += 1;
  }
  const info = historyOf(state.current);
  const away = distanceFromBottom() > Math.max(box.clientHeight / 2, 200) || Boolean(info.hasMoreAfter);
  const jump = view.jump;
  jump.hidden = !(away || (below > 0 && !view.pinned));
  jump.querySelector(".jump-label").textContent = below
    ? `${below} new message${below === 1 ? "" : "s"}`
    : "Jump to latest";
  jump.classList.toggle("has-new", below > 0);
  if (!jump.hidden) {
    const room = box.closest(".room") || box.parentElement;
    jump.style.bottom = `${room.getBoundingClientRect().bottom - box.getBoundingClientRect().bottom + 12}px`;
  }
}

function onScroll() {
  const info = state.history.get(state.current);
  // In a window of the past the bottom is not the latest: nothing may pull the view down.
  view.pinned = distanceFromBottom() < NEAR_BOTTOM_PX && !(info && info.hasMoreAfter);
  if (info && !info.loading) {
    if (el.messages.scrollTop < NEAR_EDGE_PX && info.hasMore && info.oldestSeq) loadHistory(state.current, info.oldestSeq);
    else if (distanceFromBottom() < NEAR_EDGE_PX && info.hasMoreAfter) loadNewer(state.current);
  }
  schedule();
}

/** The pane's listeners and the jump button (main.js calls it once). */
export function initMessages() {
  view.jump = h("button", { type: "button", class: "jump-latest", hidden: true, onclick: jumpToLatest },
    icon("arrow-down"), h("span", { class: "jump-label", text: "Jump to latest" }));
  el.messages.after(view.jump);
  el.messages.addEventListener("scroll", onScroll, { passive: true });
  // The pane shrinks (a taller composer, the phone's keyboard): the latest stays in view.
  new ResizeObserver(() => {
    if (view.pinned) el.messages.scrollTop = el.messages.scrollHeight;
  }).observe(el.messages);
  initMessageKeys();
}
