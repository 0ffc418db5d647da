// The composer: sending (shown at once as pending, reconciled by `client_id`), uploads
// (the attach button, or files dropped on the room or pasted), emoji, typing both ways,
// and Up in an empty composer to edit one's last message.

import { api } from "./api.js";
import { $, el, h, nameOf, showError } from "./dom.js";
import { openEmojiPicker } from "./emoji.js";
import { icon } from "./icons.js";
import { cancelReply, renderReplyBanner, startEdit } from "./message-actions.js";
import { removePendingElement, roomMessages, showPending } from "./messages.js";
import { ME, state } from "./state.js";

const TYPING_EVERY_MS = 2000; // at most one "typing" frame per this long
const TYPING_SHOWN_MS = 5000; // someone's "typing" shows this long without a new one

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) =>
    b.toString(16).padStart(2, "0"),
  ).join("");
}

function send() {
  const room = state.rooms.get(state.current);
  const content = el.input.value;
  if (!room || (!content.trim() && !state.attachments.length)) return;
  showError(el.composerError, "");
  const pending = {
    pending: true,
    client_id: uuid(),
    room: room.id,
    sender: ME,
    type: "text",
    content,
    attachments: state.attachments.map((a) => ({ ...a })),
    attachment_ids: state.attachments.map((a) => a.id),
    reply_to: state.replyTo ? state.replyTo.id : null,
    reactions: [],
    created_at: new Date().toISOString(),
  };
  state.pending.set(pending.client_id, pending);
  showPending(pending);
  el.input.value = "";
  state.attachments = [];
  state.replyTo = null;
  renderPendingFiles();
  renderReplyBanner();
  sendTyping(false);
  transmit(pending);
}

/** Send (or re-send after a reconnect) a pending message; its client_id makes it safe. */
export function transmit(pending) {
  const frame = {
    type: "message",
    ref: pending.client_id,
    room: pending.room,
    content: pending.content,
    client_id: pending.client_id,
    attachments: pending.attachment_ids,
    reply_to: pending.reply_to,
  };
  if (state.socket && state.socket.readyState === WebSocket.OPEN && state.authenticated) {
    state.socket.send(JSON.stringify(frame));
  }
}

/** The server refused a pending message: drop it, give its text back to the composer. */
export function failPending(clientId, message) {
  const pending = state.pending.get(clientId);
  state.pending.delete(clientId);
  removePendingElement(clientId);
  if (pending && !el.input.value) el.input.value = pending.content;
  showError(el.composerError, message);
}

/** Upload a file for the next message: it shows as a chip until sent. The one path for
 *  the attach button, a drop and a paste. */
async function upload(file) {
  showError(el.composerError, "");
  const room = state.rooms.get(state.current);
  if (!room || el.input.disabled) return;
  const body = new FormData();
  body.append("file", file);
  try {
    const stored = await api("POST", "/api/attachments/", body, { form: true });
    state.attachments.push(stored);
    renderPendingFiles();
  } catch (error) {
    showError(el.composerError, error.status === 413 ? "That file is too large." : error.message);
  }
}

function renderPendingFiles() {
  el.pendingFiles.replaceChildren(
    ...state.attachments.map((file) =>
      h("span", { class: "pending-attachment" }, icon("paperclip"), h("span", { text: file.name }),
        h("button", { type: "button", class: "icon-button", "aria-label": `Remove ${file.name}`,
          title: `Remove ${file.name}`,
          onclick: () => {
            state.attachments = state.attachments.filter((a) => a.id !== file.id);
            renderPendingFiles();
            el.input.focus();
          } }, icon("x")))),
  );
}

function sendTyping(isTyping) {
  if (!state.current || !state.socket || state.socket.readyState !== WebSocket.OPEN) return;
  const now = Date.now();
  if (isTyping && now - state.lastTypingSent < TYPING_EVERY_MS) return;
  if (!isTyping && !state.lastTypingSent) return;
  state.lastTypingSent = isTyping ? now : 0;
  state.socket.send(JSON.stringify({ type: "typing", room: state.current, is_typing: isTyping }));
}

/** A `typing` frame: someone started or stopped typing in a room. */
export function noteTyping(frame) {
  if (!state.typing.has(frame.room)) state.typing.set(frame.room, new Map());
  const typists = state.typing.get(frame.room);
  if (frame.is_typing) typists.set(frame.user.id, { name: nameOf(frame.user), until: Date.now() + TYPING_SHOWN_MS });
  else typists.delete(frame.user.id);
  if (frame.room === state.current) renderTyping();
}

export function renderTyping() {
  const now = Date.now();
  const typists = [...(state.typing.get(state.current) || new Map()).values()]
    .filter((t) => t.until > now)
    .map((t) => t.name);
  el.typing.textContent = typists.length
    ? `${typists.join(", ")} ${typists.length === 1 ? "is" : "are"} typing…`
    : "";
}

export function initComposer() {
  el.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  el.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    } else if (event.key === "ArrowUp" && !el.input.value && !event.shiftKey && !event.altKey &&
        !event.ctrlKey && !event.metaKey) {
      if (editLastMessage()) event.preventDefault();
    }
  });
  el.input.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData ? event.clipboardData.files : [])];
    if (!files.length) return;
    event.preventDefault(); // a pasted picture is an upload, not text
    for (const file of files) upload(file);
  });
  initDrop();
  $("#attach-button")?.addEventListener("click", () => el.file.click());
  const emojiButton = $("#emoji-button");
  emojiButton?.addEventListener("click", () => openEmojiPicker(emojiButton, insertText, "Insert an emoji"));
  el.input.addEventListener("input", () => sendTyping(el.input.value.length > 0));
  el.input.addEventListener("blur", () => sendTyping(false));
  el.file.addEventListener("change", () => {
    for (const file of el.file.files) upload(file);
    el.file.value = "";
  });
  $(".cancel-reply", el.replyBanner).addEventListener("click", cancelReply);
  setInterval(renderTyping, 1000); // a "typing" that was never stopped expires
}

/** Up in an empty composer: edit my last message in the open room. False if none. */
function editLastMessage() {
  const mine = [...roomMessages(state.current).values()]
    .filter((m) => m.sender && m.sender.id === ME.id && m.type === "text" && !m.deleted)
    .sort((a, b) => b.seq - a.seq)[0];
  const node = mine && el.messages.querySelector(`.message[data-message-id="${mine.id}"]`);
  if (!node) return false;
  node.scrollIntoView({ block: "nearest" });
  startEdit(node, mine, { returnTo: el.input });
  return true;
}

/** Put `text` at the composer's cursor (an emoji from the picker). */
function insertText(text) {
  const { selectionStart: start, selectionEnd: end, value } = el.input;
  el.input.value = value.slice(0, start) + text + value.slice(end);
  el.input.focus();
  el.input.setSelectionRange(start + text.length, start + text.length);
  el.input.dispatchEvent(new Event("input"));
}

/** Files dragged over the room: the composer shows it takes them; dropped, they upload. */
function initDrop() {
  const zone = el.composer.closest(".room") || el.composer;
  let depth = 0; // dragenter/dragleave fire for every child crossed
  const carriesFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
  zone.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    depth += 1;
    el.composer.classList.add("drop-target");
  });
  zone.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) el.composer.classList.remove("drop-target");
  });
  zone.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault(); // allows the drop
    event.dataTransfer.dropEffect = "copy";
  });
  zone.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth = 0;
    el.composer.classList.remove("drop-target");
    for (const file of event.dataTransfer.files) upload(file);
    el.input.focus();
  });
}
