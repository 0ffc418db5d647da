// The composer: sending (shown at once as pending, reconciled by `client_id`), uploads,
// and typing, both ways.

import { api } from "./api.js";
import { $, el, h, nameOf, showError } from "./dom.js";
import { cancelReply, renderReplyBanner } from "./message-actions.js";
import { messageElement, removePendingElement, scrollToBottom } from "./messages.js";
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
  el.messages.append(messageElement(pending));
  scrollToBottom();
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

async function upload(file) {
  showError(el.composerError, "");
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
      h("span", { class: "pending-attachment" }, `📎 ${file.name}`,
        h("button", { type: "button", "aria-label": `Remove ${file.name}`, text: "✕",
          onclick: () => {
            state.attachments = state.attachments.filter((a) => a.id !== file.id);
            renderPendingFiles();
          } }))),
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
    }
  });
  el.input.addEventListener("input", () => sendTyping(el.input.value.length > 0));
  el.input.addEventListener("blur", () => sendTyping(false));
  el.file.addEventListener("change", () => {
    for (const file of el.file.files) upload(file);
    el.file.value = "";
  });
  $(".cancel-reply", el.replyBanner).addEventListener("click", cancelReply);
  setInterval(renderTyping, 1000); // a "typing" that was never stopped expires
}
