// The emoji picker, for reactions and the composer: a small curated set of common emoji
// (no external file), in a grid of buttons the keyboard moves through (arrows, Home, End;
// Enter or Space picks; Escape or Tab closes and gives focus back to the opener).

import { h } from "./dom.js";

// [emoji, name]: the name is the button's accessible label and tooltip.
export const EMOJI = [
  ["👍", "thumbs up"], ["❤️", "heart"], ["😂", "tears of joy"], ["🎉", "party"],
  ["😮", "surprised"], ["👀", "eyes"], ["🙏", "thanks"], ["✅", "done"],
  ["😀", "grin"], ["😊", "smile"], ["😉", "wink"], ["😍", "heart eyes"],
  ["🤔", "thinking"], ["😅", "sweat smile"], ["😢", "sad"], ["😡", "angry"],
  ["👎", "thumbs down"], ["👏", "clap"], ["🙌", "raised hands"], ["💪", "strong"],
  ["🔥", "fire"], ["🚀", "rocket"], ["💯", "hundred"], ["✨", "sparkles"],
  ["👋", "wave"], ["🤝", "handshake"], ["☕", "coffee"], ["🍕", "pizza"],
  ["🐛", "bug"], ["⚠️", "warning"], ["❌", "no"], ["➕", "plus one"],
];

const COLUMNS = 8;
let open = null; // {picker, opener, close}

/** Open the picker by `opener` (a button); `onPick(emoji)` runs with the chosen one. A
 *  second call on the same opener closes it. */
export function openEmojiPicker(opener, onPick, label = "Choose an emoji") {
  const again = open && open.opener === opener;
  closeEmojiPicker();
  if (again) return;
  const buttons = EMOJI.map(([emoji, name], index) =>
    h("button", {
      type: "button",
      class: "emoji-option",
      "data-emoji": emoji,
      "aria-label": name,
      title: name,
      tabindex: index === 0 ? 0 : -1,
      text: emoji,
      onclick: () => {
        closeEmojiPicker({ refocus: false });
        onPick(emoji);
      },
    }),
  );
  const picker = h("div", { class: "emoji-picker", role: "dialog", "aria-label": label }, ...buttons);
  picker.addEventListener("keydown", (event) => {
    const index = buttons.indexOf(document.activeElement);
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: COLUMNS, ArrowUp: -COLUMNS };
    let next = null;
    if (event.key in moves) next = index + moves[event.key];
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = buttons.length - 1;
    else if (event.key === "Escape" || event.key === "Tab") {
      event.preventDefault();
      event.stopPropagation();
      closeEmojiPicker();
      return;
    } else return;
    event.preventDefault();
    if (next < 0 || next >= buttons.length) return;
    for (const button of buttons) button.tabIndex = -1;
    buttons[next].tabIndex = 0;
    buttons[next].focus();
  });
  document.body.append(picker);
  place(picker, opener);
  opener.setAttribute("aria-expanded", "true");
  const outside = (event) => {
    if (!picker.contains(event.target) && !opener.contains(event.target)) closeEmojiPicker({ refocus: false });
  };
  document.addEventListener("pointerdown", outside, true);
  open = { picker, opener, outside };
  buttons[0].focus();
}

export function closeEmojiPicker({ refocus = true } = {}) {
  if (!open) return;
  const { picker, opener, outside } = open;
  open = null;
  document.removeEventListener("pointerdown", outside, true);
  picker.remove();
  opener.setAttribute("aria-expanded", "false");
  if (refocus && opener.isConnected) opener.focus();
}

/** Above the opener when there is room, else below; kept inside the window. */
function place(picker, opener) {
  const anchor = opener.getBoundingClientRect();
  const size = picker.getBoundingClientRect();
  const margin = 8;
  let top = anchor.top - size.height - 6;
  if (top < margin) top = Math.min(anchor.bottom + 6, window.innerHeight - size.height - margin);
  let left = anchor.right - size.width;
  left = Math.max(margin, Math.min(left, window.innerWidth - size.width - margin));
  picker.style.top = `${Math.max(margin, top)}px`;
  picker.style.left = `${left}px`;
}
