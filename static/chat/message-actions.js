// What a reader does to a message: react (and reactions others make, live), edit,
// delete, and reply (the banner above the composer). The toolbar shows on hover and
// whenever focus is inside the message, so the keyboard reaches every action
// (message-keys.js moves between messages and has shortcuts for them).

import { api } from "./api.js";
import { $, el, h, nameOf, showError } from "./dom.js";
import { openEmojiPicker } from "./emoji.js";
import { icon } from "./icons.js";
import { placeMessage, roomMessages, storeMessage } from "./messages.js";
import { ME, state } from "./state.js";

function actionButton(className, label, name, onclick) {
  return h("button", { type: "button", class: className, "aria-label": label, title: label, onclick }, icon(name));
}

/** The toolbar of a message; edit and delete only on one's own. */
export function messageActions(message, mine) {
  const actions = h("div", { class: "message-actions", role: "toolbar", "aria-label": "Message actions" },
    actionButton("react-button", "Add a reaction", "smile-plus", (event) => pickReaction(event.currentTarget, message)),
    actionButton("reply-button", "Reply", "reply", () => startReply(message)),
  );
  if (mine) {
    actions.append(
      actionButton("edit-button", "Edit", "edit", (event) => startEdit(event.currentTarget.closest(".message"), message)),
      actionButton("delete-button", "Delete", "trash", () => deleteMessage(message)),
    );
  }
  return actions;
}

/** The emoji picker for a reaction to `message`, opened by `button`. */
export function pickReaction(button, message) {
  openEmojiPicker(button, (emoji) => {
    const current = roomMessages(message.room).get(message.id) || message;
    const reaction = (current.reactions || []).find((r) => r.emoji === emoji);
    const mine = Boolean(reaction && (reaction.me ?? (reaction.user_ids || []).includes(ME.id)));
    toggleReaction(current, emoji, mine);
    const node = el.messages.querySelector(`.message[data-message-id="${message.id}"]`);
    if (node) node.focus({ preventScroll: true });
  }, "Add a reaction");
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

/** Edit `message` in place (its element `node`): Enter saves, Escape cancels; focus then
 *  goes back to the message, or to `returnTo` (the composer, for Up in an empty one). */
export function startEdit(node, message, { returnTo = null } = {}) {
  const content = node && node.querySelector(".message-content");
  if (!content || node.querySelector(".edit-input")) return;
  const editor = h("textarea", { class: "edit-input", "aria-label": "Edit message", rows: 2 });
  editor.value = message.content;
  const done = (shown) => {
    editor.remove();
    placeMessage(shown);
    const back = returnTo || el.messages.querySelector(`.message[data-message-id="${message.id}"]`);
    if (back) back.focus({ preventScroll: true });
  };
  editor.addEventListener("keydown", async (event) => {
    event.stopPropagation(); // the message list's keys are not for the editor
    if (event.key === "Escape") {
      event.preventDefault();
      done(roomMessages(message.room).get(message.id) || message);
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      try {
        const updated = await api("PATCH", `/api/messages/${message.id}/`, { content: editor.value });
        editor.remove();
        storeMessage(updated);
        done(roomMessages(message.room).get(message.id) || updated);
      } catch (error) {
        showError(el.composerError, error.message);
      }
    }
  });
  content.replaceWith(editor);
  editor.focus();
  editor.setSelectionRange(editor.value.length, editor.value.length);
}

export async function deleteMessage(message) {
  if (!confirm("Delete this message?")) return;
  try {
    storeMessage(await api("DELETE", `/api/messages/${message.id}/`));
  } catch (error) {
    showError(el.composerError, error.message);
  }
}

export function startReply(message) {
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
