// Small element helpers and the page's fixed elements. User content only ever reaches
// the DOM through textContent and attributes (`h`'s `text`), never innerHTML, so it is
// shown as text.

export const $ = (selector, root = document) => root.querySelector(selector);

/** The elements of templates/chat.html the modules render into. */
export const el = {
  app: $("#app"),
  rooms: $("#room-list"),
  directs: $("#direct-list"),
  publicRooms: $("#public-rooms"),
  title: $("#room-title"),
  description: $("#room-description"),
  messages: $("#messages"),
  typing: $("#typing-indicator"),
  members: $("#member-list"),
  composer: $("#composer"),
  input: $("#message-input"),
  file: $("#file-input"),
  pendingFiles: $("#pending-attachments"),
  replyBanner: $("#reply-banner"),
  composerError: $("#composer-error"),
  connection: $("#connection-state"),
};

/** `h("li", {class, text, onclick, "data-x": …}, ...children)`: an element. `text` sets
 *  textContent; null, undefined and false attributes are left out. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

/** What the page calls a user: the display name, else the username. */
export function nameOf(user) {
  return (user && (user.display_name || user.username)) || "someone";
}

/** Show `message` in an error element, or hide it when there is none. */
export function showError(node, message) {
  node.textContent = message || "";
  node.hidden = !message;
}
