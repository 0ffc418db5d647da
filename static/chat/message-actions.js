// What a reader does to a message: react (and reactions others make, live), edit,
// delete, and reply (the banner above the composer).

import { api } from "./api.js";
import { $, el, h, nameOf, showError } from "./dom.js";
import { placeMessage, roomMessages, storeMessage } from "./messages.js";
import { state } from "./state.js";

const EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "👀"];

/** The buttons under a message; edit and delete only on one's own. */
export function messageActions(message, mine) {
  const actions = h("div", { class: "message-actions" },
    h("button", { type: "button", class: "react-button", "aria-label": "Add a reaction",
      text: "☺+", onclick: (event) => openPicker(event.currentTarget, message) }),
    h("button", { type: "button", class: "reply-button", text: "Reply",
      onclick: () => startReply(message) }),
  );
  if (mine) {
    actions.append(
      h("button", { type: "button", class: "edit-button", text: "Edit",
        onclick: (event) => startEdit(event.currentTarget.closest(".message"), message) }),
      h("button", { type: "button", class: "delete-button", text: "Delete",
        onclick: () => deleteMessage(message) }),
    );
  }
  return actions;
}

function openPicker(button, message) {
  const existing = button.parentElement.querySelector(".emoji-picker");
  if (existing) {
    existing.remove();
    return;
  }
  const picker = h("div", { class: "emoji-picker", role: "menu" },
    ...EMOJI.map((emoji) => h("button", { type: "button", "data-emoji": emoji, role: "menuitem",
      text: emoji, onclick: () => { picker.remove(); toggleReaction(message, emoji, false); } })));
  button.after(picker);
  picker.querySelector("button").focus();
}

export async function toggleReaction(message, emoji, mine) {
  const path = `/api/messages/${message.id}/reactions/`;
  try {
    const updated = mine
      ? await api("DELETE", `${path}${encodeURIComponent(emoji)}/`)
      : await api("POST", path, { emoji });
    storeMessage(updated);
  } catch (error) {
    showError(el.composerError, error.message);
  }
}

/** A `reaction_added` / `reaction_removed` frame, applied to the message it names. */
export function applyReaction(event) {
  const message = roomMessages(event.room).get(event.message_id);
  if (!message) return;
  const reactions = (message.reactions || []).map((r) => ({ ...r, user_ids: [...(r.user_ids || [])] }));
  let entry = reactions.find((r) => r.emoji === event.emoji);
  if (event.type === "reaction_added") {
    if (!entry) reactions.push((entry = { emoji: event.emoji, count: 0, user_ids: [] }));
    if (!entry.user_ids.includes(event.user_id)) {
      entry.user_ids.push(event.user_id);
      entry.count += 1;
    }
  } else if (entry && entry.user_ids.includes(event.user_id)) {
    entry.user_ids = entry.user_ids.filter((id) => id !== event.user_id);
    entry.count -= 1;
  }
  for (const r of reactions) delete r.me;
  storeMessage({ ...message, pos: event.pos, reactions: reactions.filter((r) => r.count > 0) });
}

function startEdit(node, message) {
  const content = node.querySelector(".message-content");
  const editor = h("textarea", { class: "edit-input", "aria-label": "Edit message", rows: 2 });
  editor.value = message.content;
  const cancel = () => placeMessage(roomMessages(message.room).get(message.id) || message);
  editor.addEventListener("keydown", async (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      editor.remove();
      cancel();
    } else if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      try {
        const updated = await api("PATCH", `/api/messages/${message.id}/`, { content: editor.value });
        editor.remove();
        storeMessage(updated);
        placeMessage(updated);
      } catch (error) {
        showError(el.composerError, error.message);
      }
    }
  });
  content.replaceWith(editor);
  editor.focus();
}

async function deleteMessage(message) {
  if (!confirm("Delete this message?")) return;
  try {
    storeMessage(await api("DELETE", `/api/messages/${message.id}/`));
  } catch (error) {
    showError(el.composerError, error.message);
  }
}

function startReply(message) {
  state.replyTo = message;
  renderReplyBanner();
  el.input.focus();
}

export function cancelReply() {
  state.replyTo = null;
  renderReplyBanner();
}

export function renderReplyBanner() {
  el.replyBanner.hidden = !state.replyTo;
  if (state.replyTo) {
    $(".reply-text", el.replyBanner).textContent =
      `Replying to ${nameOf(state.replyTo.sender)}: ${state.replyTo.content.slice(0, 80)}`;
  }
}
