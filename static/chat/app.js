// The chat page: rooms, live messages over one WebSocket, recovery after a drop.
// No framework and no build step. User content only ever reaches the DOM through
// textContent and attributes, never innerHTML, so it is shown as text.
"use strict";

(() => {
  const app = document.getElementById("app");
  const ME = {
    id: Number(app.dataset.userId),
    username: app.dataset.username,
    display_name: app.dataset.displayName,
  };
  const EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "👀"];
  const PAGE = 50;
  const TYPING_EVERY_MS = 2000;
  const TYPING_SHOWN_MS = 5000;

  const $ = (selector, root = document) => root.querySelector(selector);
  const el = {
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

  const state = {
    rooms: new Map(), // id -> room (REST shape)
    current: null, // open room id
    messages: new Map(), // room id -> Map(message id -> message)
    pending: new Map(), // client_id -> pending message (not yet acknowledged)
    history: new Map(), // room id -> {oldestSeq, hasMore, loading, loaded}
    lastPos: new Map(), // room id -> highest stream position applied
    recovering: new Set(), // rooms with a `join … after` under way
    online: new Set(), // user ids known to be online
    typing: new Map(), // room id -> Map(user id -> {name, until})
    replyTo: null,
    attachments: [], // uploaded, not yet sent: {id, name}
    socket: null,
    backoff: 1000,
    lastTypingSent: 0,
    readTimer: null,
  };

  // ------------------------------------------------------------------ helpers

  function h(tag, attrs = {}, ...children) {
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

  function nameOf(user) {
    return (user && (user.display_name || user.username)) || "someone";
  }

  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) =>
      b.toString(16).padStart(2, "0"),
    ).join("");
  }

  function csrfToken() {
    const cookie = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
    return cookie ? decodeURIComponent(cookie.split("=")[1]) : "";
  }

  async function api(method, path, body, { form = false } = {}) {
    const headers = { Accept: "application/json", "X-CSRFToken": csrfToken() };
    let payload = body;
    if (body !== undefined && !form) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const response = await fetch(path, {
      method,
      headers,
      body: payload,
      credentials: "same-origin",
    });
    if (response.status === 401) {
      location.href = "/login/?next=/";
      throw new Error("signed out");
    }
    const data = [204, 205].includes(response.status)
      ? null
      : await response.json().catch(() => null);
    if (!response.ok) {
      const error = new Error((data && (data.detail || firstError(data))) || response.statusText);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function firstError(data) {
    for (const value of Object.values(data)) {
      if (Array.isArray(value) && value.length) return String(value[0]);
    }
    return null;
  }

  function showError(node, message) {
    node.textContent = message || "";
    node.hidden = !message;
  }

  // -------------------------------------------------------------------- rooms

  function roomLabel(room) {
    if (room.kind !== "direct") return room.name;
    const others = room.name.split(" & ").filter((n) => n !== ME.username);
    return others[0] || room.name;
  }

  function isMember(room) {
    return room.my_role !== null && room.my_role !== undefined;
  }

  function renderRoomList() {
    const rooms = [...state.rooms.values()].filter(isMember);
    const byName = (a, b) => roomLabel(a).localeCompare(roomLabel(b));
    el.rooms.replaceChildren(
      ...rooms.filter((r) => r.kind !== "direct").sort(byName).map(roomItem),
    );
    el.directs.replaceChildren(
      ...rooms.filter((r) => r.kind === "direct").sort(byName).map(roomItem),
    );
  }

  function roomItem(room) {
    const dot =
      room.kind === "direct"
        ? h("span", {
            class: `presence-dot${state.online.has(room.peer_id) ? " online" : ""}`,
            "aria-label": state.online.has(room.peer_id) ? "online" : "offline",
          })
        : h("span", { class: "room-hash", "aria-hidden": "true", text: room.kind === "private" ? "🔒" : "#" });
    const badge = h("span", {
      class: "unread-badge",
      text: String(room.unread_count || 0),
      hidden: !room.unread_count,
      "aria-label": `${room.unread_count || 0} unread`,
    });
    const item = h(
      "li",
      {
        "data-room-id": room.id,
        class: room.id === state.current ? "active" : "",
        tabindex: 0,
        role: "button",
        "aria-current": room.id === state.current ? "true" : null,
        onclick: () => openRoom(room.id),
        onkeydown: (event) => {
          if (event.key === "Enter" || event.key === " ") {
            event.preventDefault();
            openRoom(room.id);
          }
        },
      },
      dot,
      h("span", { class: "room-name", text: roomLabel(room) }),
      badge,
    );
    if (room.is_archived) item.classList.add("archived");
    return item;
  }

  async function loadRooms() {
    let url = "/api/rooms/?limit=200";
    while (url) {
      const page = await api("GET", url);
      for (const room of page.results) state.rooms.set(room.id, room);
      url = page.next;
    }
    renderRoomList();
  }

  /** Rooms the user was added to while this page was not connected (the server says
   *  `room_added` to connected pages): reload the list and join the new ones. */
  async function refreshRooms() {
    if (!state.authenticated) return;
    const known = new Set([...state.rooms.values()].filter(isMember).map((r) => r.id));
    const current = state.rooms.get(state.current);
    try {
      await loadRooms();
    } catch {
      return;
    }
    if (current) upsertRoom({ id: current.id, unread_count: current.unread_count });
    for (const room of state.rooms.values()) {
      if (isMember(room) && !known.has(room.id) && state.socket && state.authenticated) {
        joinRoom(room.id);
      }
    }
  }

  function upsertRoom(room) {
    state.rooms.set(room.id, { ...state.rooms.get(room.id), ...room });
    renderRoomList();
  }

  async function openRoom(roomId) {
    const room = state.rooms.get(roomId);
    if (!room) return;
    state.current = roomId;
    state.replyTo = null;
    renderReplyBanner();
    el.title.textContent = roomLabel(room);
    el.description.textContent = room.description || "";
    document.title = `${roomLabel(room)} · Chat`;
    app.classList.remove("show-sidebar");
    renderRoomList();
    renderMessages();
    renderTyping();
    el.input.disabled = room.is_archived;
    el.input.placeholder = room.is_archived
      ? "This room is archived and read-only."
      : "Write a message… (Enter sends, Shift+Enter for a new line)";
    if (!state.history.get(roomId)?.loaded) await loadHistory(roomId);
    loadMembers(roomId);
    scheduleRead();
  }

  // ----------------------------------------------------------------- messages

  function roomMessages(roomId) {
    if (!state.messages.has(roomId)) state.messages.set(roomId, new Map());
    return state.messages.get(roomId);
  }

  /** Keep the newest state of a message: a change with a higher `pos` wins. */
  function storeMessage(message) {
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

  async function loadHistory(roomId, before) {
    const info = state.history.get(roomId) || { hasMore: true, loading: false, loaded: false };
    if (info.loading) return;
    info.loading = true;
    state.history.set(roomId, info);
    try {
      const query = new URLSearchParams({ limit: String(PAGE) });
      if (before) query.set("before", String(before));
      const page = await api("GET", `/api/rooms/${roomId}/messages/?${query}`);
      const box = el.messages;
      const fromBottom = box.scrollHeight - box.scrollTop;
      for (const message of page.results) storeMessage(message);
      info.hasMore = page.has_more;
      info.loaded = true;
      if (page.results.length) {
        info.oldestSeq = Math.min(info.oldestSeq || Infinity, page.results[0].seq);
      }
      if (!state.lastPos.has(roomId)) state.lastPos.set(roomId, page.pos);
      if (roomId === state.current) {
        if (before) box.scrollTop = box.scrollHeight - fromBottom;
        else scrollToBottom();
      }
    } finally {
      info.loading = false;
    }
  }

  function renderMessages() {
    const roomId = state.current;
    const messages = [...roomMessages(roomId).values()].sort((a, b) => a.seq - b.seq);
    el.messages.replaceChildren(...messages.map(messageElement));
    for (const pending of state.pending.values()) {
      if (pending.room === roomId) el.messages.append(messageElement(pending));
    }
    scrollToBottom();
  }

  function placeMessage(message) {
    const box = el.messages;
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
    const node = messageElement(message);
    const old = box.querySelector(`.message[data-message-id="${message.id}"]`);
    if (old) {
      if (old.querySelector(".edit-input")) return; // do not pull the editor away
      old.replaceWith(node);
      return;
    }
    let next = null;
    for (const child of box.children) {
      const seq = Number(child.dataset.seq);
      if (child.classList.contains("pending") || seq > message.seq) {
        next = child;
        break;
      }
    }
    box.insertBefore(node, next);
    if (atBottom || (message.sender && message.sender.id === ME.id)) scrollToBottom();
  }

  function removePendingElement(clientId) {
    const node = el.messages.querySelector(`.message.pending[data-client-id="${CSS.escape(clientId)}"]`);
    if (node) node.remove();
  }

  function scrollToBottom() {
    el.messages.scrollTop = el.messages.scrollHeight;
  }

  function messageElement(message) {
    const mine = message.sender && message.sender.id === ME.id;
    const classes = ["message"];
    if (mine) classes.push("mine");
    if (message.type === "system") classes.push("system");
    if (message.type === "announcement") classes.push("announcement");
    if (message.deleted) classes.push("deleted");
    if (message.pending) classes.push("pending");
    const node = h("article", {
      class: classes.join(" "),
      "data-message-id": message.pending ? null : message.id,
      "data-client-id": message.client_id,
      "data-seq": message.pending ? null : message.seq,
    });
    if (message.type === "system") {
      node.append(h("div", { class: "message-content", text: message.content }));
      return node;
    }
    const time = new Date(message.created_at);
    node.append(
      h(
        "div",
        { class: "message-head" },
        h("span", { class: "message-sender", text: nameOf(message.sender) }),
        h("time", {
          class: "message-time",
          datetime: message.created_at,
          text: time.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
        }),
        message.edited_at && !message.deleted
          ? h("span", { class: "edited-mark", text: "(edited)" })
          : null,
      ),
    );
    if (message.reply_to) node.append(replyQuote(message));
    if (message.title && !message.deleted) {
      node.append(h("div", { class: "message-title", text: message.title }));
    }
    node.append(
      h("div", {
        class: "message-content",
        text: message.deleted ? "This message was deleted." : message.content,
      }),
    );
    if (!message.deleted && message.attachments && message.attachments.length) {
      node.append(h("div", { class: "attachments" }, ...message.attachments.map(attachmentElement)));
    }
    if (!message.deleted && message.reactions && message.reactions.length) {
      node.append(h("div", { class: "reactions" }, ...message.reactions.map((r) => reactionChip(message, r))));
    }
    if (!message.pending && !message.deleted) node.append(messageActions(message, mine));
    return node;
  }

  function replyQuote(message) {
    const original = roomMessages(message.room).get(message.reply_to);
    const text = original
      ? `${nameOf(original.sender)}: ${original.deleted ? "deleted message" : original.content}`
      : "an earlier message";
    return h("div", { class: "reply-quote", text: `↪ ${text.slice(0, 140)}` });
  }

  function attachmentElement(file) {
    const safe = typeof file.url === "string" && /^(https?:\/\/|\/)/.test(file.url);
    if (!safe) return null;
    if (file.content_type && file.content_type.startsWith("image/")) {
      return h("a", { class: "attachment", href: file.url, target: "_blank", rel: "noopener" },
        h("img", { src: file.url, alt: file.name || "image", loading: "lazy" }));
    }
    return h("a", { class: "attachment", href: file.url, target: "_blank", rel: "noopener noreferrer",
      text: `📄 ${file.name || file.url}` });
  }

  function reactionChip(message, reaction) {
    const mine = reaction.me ?? (reaction.user_ids || []).includes(ME.id);
    return h(
      "button",
      {
        type: "button",
        class: `reaction${mine ? " mine" : ""}`,
        "data-emoji": reaction.emoji,
        "aria-pressed": mine ? "true" : "false",
        "aria-label": `${reaction.emoji} ${reaction.count}`,
        onclick: () => toggleReaction(message, reaction.emoji, mine),
      },
      reaction.emoji,
      h("span", { class: "reaction-count", text: String(reaction.count) }),
    );
  }

  function messageActions(message, mine) {
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

  async function toggleReaction(message, emoji, mine) {
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

  function applyReaction(event) {
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

  function renderReplyBanner() {
    el.replyBanner.hidden = !state.replyTo;
    if (state.replyTo) {
      $(".reply-text", el.replyBanner).textContent =
        `Replying to ${nameOf(state.replyTo.sender)}: ${state.replyTo.content.slice(0, 80)}`;
    }
  }

  // ----------------------------------------------------------------- composer

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
  function transmit(pending) {
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

  function failPending(clientId, message) {
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

  function renderTyping() {
    const now = Date.now();
    const typists = [...(state.typing.get(state.current) || new Map()).values()]
      .filter((t) => t.until > now)
      .map((t) => t.name);
    el.typing.textContent = typists.length
      ? `${typists.join(", ")} ${typists.length === 1 ? "is" : "are"} typing…`
      : "";
  }

  // ------------------------------------------------------------------ members

  async function loadMembers(roomId) {
    try {
      const page = await api("GET", `/api/rooms/${roomId}/members/?limit=200`);
      if (roomId !== state.current) return;
      for (const member of page.results) {
        if (member.is_online) state.online.add(member.user.id);
      }
      state.memberList = page.results;
      renderMembers();
    } catch {
      el.members.replaceChildren();
    }
  }

  function renderMembers() {
    const members = (state.memberList || []).slice().sort((a, b) =>
      Number(state.online.has(b.user.id)) - Number(state.online.has(a.user.id)) ||
      nameOf(a.user).localeCompare(nameOf(b.user)));
    el.members.replaceChildren(
      ...members.map((m) =>
        h("li", { "data-user-id": m.user.id },
          h("span", { class: `presence-dot${state.online.has(m.user.id) ? " online" : ""}`,
            "aria-label": state.online.has(m.user.id) ? "online" : "offline" }),
          h("span", { class: "member-name", text: nameOf(m.user) }),
          m.role !== "member" ? h("span", { class: "role", text: m.role }) : null)),
    );
  }

  function setOnline(userId, online) {
    if (online) state.online.add(userId);
    else state.online.delete(userId);
    renderMembers();
    renderRoomList();
  }

  // ----------------------------------------------------------------- the socket

  function setConnection(kind, text) {
    el.connection.dataset.state = kind;
    el.connection.textContent = text;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/`);
    state.socket = socket;
    state.authenticated = false;
    socket.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      handleFrame(frame);
    });
    socket.addEventListener("close", (event) => {
      if (state.socket !== socket) return;
      state.socket = null;
      state.authenticated = false;
      if (event.code === 4401) {
        location.href = "/login/?next=/";
        return;
      }
      reconnectLater();
    });
  }

  function reconnectLater() {
    const delay = Math.min(state.backoff, 30000);
    state.backoff = Math.min(state.backoff * 2, 30000);
    const wait = delay / 2 + Math.random() * (delay / 2); // jitter: not all tabs at once
    setConnection(navigator.onLine === false ? "offline" : "reconnecting",
      navigator.onLine === false ? "Offline" : `Reconnecting in ${Math.ceil(wait / 1000)} s…`);
    setTimeout(connect, wait);
  }

  function joinRoom(roomId) {
    const room = state.rooms.get(roomId);
    if (!state.lastPos.has(roomId) && room && typeof room.pos === "number") {
      // What the room list showed is as of `room.pos`: replay anything after it.
      state.lastPos.set(roomId, room.pos);
    }
    const frame = { type: "join", room: roomId, ref: `join-${roomId}` };
    if (state.lastPos.has(roomId)) frame.after = state.lastPos.get(roomId);
    state.socket.send(JSON.stringify(frame));
  }

  /** Positions of a room must arrive without a gap; a gap means a missed change. */
  function notePosition(roomId, pos) {
    if (pos === undefined || pos === null) return;
    const last = state.lastPos.get(roomId);
    if (last !== undefined && pos > last + 1 && !state.recovering.has(roomId)) {
      state.recovering.add(roomId);
      state.socket.send(JSON.stringify({ type: "join", room: roomId, after: last, ref: `recover-${roomId}` }));
    }
    if (last === undefined || pos > last) state.lastPos.set(roomId, pos);
  }

  function handleFrame(frame) {
    switch (frame.type) {
      case "authenticated":
        state.authenticated = true;
        state.backoff = 1000;
        setConnection("connected", "Connected");
        for (const room of state.rooms.values()) if (isMember(room)) joinRoom(room.id);
        for (const pending of state.pending.values()) transmit(pending);
        if (state.reconnected) refreshRooms();
        state.reconnected = true;
        break;
      case "ack":
        if (frame.pos !== undefined && !state.lastPos.has(frame.room)) {
          state.lastPos.set(frame.room, frame.pos); // a join: live positions follow this one
        }
        if (frame.message) {
          storeMessage(frame.message);
        } else if (typeof frame.ref === "string" && frame.ref.startsWith("recover-")) {
          state.recovering.delete(frame.room);
        } else if (frame.unread_count !== undefined) {
          upsertRoom({ id: frame.room, unread_count: frame.unread_count });
        }
        break;
      case "error":
        if (frame.ref && state.pending.has(frame.ref)) failPending(frame.ref, frame.message);
        else if (typeof frame.ref === "string" && frame.ref.startsWith("recover-")) state.recovering.clear();
        else if (frame.code !== "not_found") showError(el.composerError, frame.message);
        break;
      case "message":
      case "message_updated": {
        notePosition(frame.room, frame.pos);
        const isNew = storeMessage(frame.message);
        if (frame.type === "message" && isNew) countUnread(frame.message);
        if (frame.message.room === state.current) scheduleRead();
        break;
      }
      case "message_deleted": {
        notePosition(frame.room, frame.pos);
        const message = roomMessages(frame.room).get(frame.message_id);
        if (message) storeMessage({ ...message, pos: frame.pos, deleted: true, content: "", attachments: [] });
        break;
      }
      case "reaction_added":
      case "reaction_removed":
        notePosition(frame.room, frame.pos);
        applyReaction(frame);
        break;
      case "typing": {
        if (!state.typing.has(frame.room)) state.typing.set(frame.room, new Map());
        const typists = state.typing.get(frame.room);
        if (frame.is_typing) typists.set(frame.user.id, { name: nameOf(frame.user), until: Date.now() + TYPING_SHOWN_MS });
        else typists.delete(frame.user.id);
        if (frame.room === state.current) renderTyping();
        break;
      }
      case "room_users":
        for (const user of frame.users) state.online.add(user.id);
        renderMembers();
        break;
      case "user_joined":
        setOnline(frame.user.id, true);
        if (frame.room === state.current && !(state.memberList || []).some((m) => m.user.id === frame.user.id)) {
          loadMembers(frame.room);
        }
        break;
      case "user_online":
      case "user_offline":
        setOnline(frame.user_id, frame.is_online);
        break;
      case "user_left":
        if (frame.user && frame.user.id === ME.id) removedFrom(frame.room);
        break;
      case "room_added":
        api("GET", `/api/rooms/${frame.room}/`)
          .then((room) => {
            const known = state.rooms.has(room.id) && isMember(state.rooms.get(room.id));
            upsertRoom(room);
            if (!known && state.socket && state.authenticated) joinRoom(room.id);
          })
          .catch(() => {});
        break;
      case "room_deleted":
        removedFrom(frame.room);
        break;
      case "room_purged":
        roomMessages(frame.room).clear();
        if (frame.room === state.current) renderMessages();
        break;
      default:
        break;
    }
  }

  function countUnread(message) {
    const mine = message.sender && message.sender.id === ME.id;
    if (mine || message.type === "system") return;
    const room = state.rooms.get(message.room);
    if (!room) return;
    if (message.room === state.current && document.visibilityState === "visible") return;
    upsertRoom({ id: room.id, unread_count: (room.unread_count || 0) + 1, last_message_at: message.created_at });
  }

  function removedFrom(roomId) {
    const room = state.rooms.get(roomId);
    if (room && room.kind === "public") upsertRoom({ id: roomId, my_role: null });
    else state.rooms.delete(roomId);
    renderRoomList();
    if (state.current === roomId) {
      const general = [...state.rooms.values()].find((r) => isMember(r));
      if (general) openRoom(general.id);
    }
  }

  /** Tell the server what the reader has seen in the open room (debounced). */
  function scheduleRead() {
    clearTimeout(state.readTimer);
    state.readTimer = setTimeout(() => {
      const roomId = state.current;
      const room = state.rooms.get(roomId);
      if (!room || !isMember(room) || document.visibilityState !== "visible") return;
      const latest = [...roomMessages(roomId).values()].reduce((a, b) => (a && a.seq > b.seq ? a : b), null);
      if (!latest || !state.socket || state.socket.readyState !== WebSocket.OPEN) return;
      state.socket.send(JSON.stringify({ type: "read", room: roomId, message_id: latest.id, ref: `read-${roomId}` }));
    }, 300);
  }

  // --------------------------------------------------------------- sidebar forms

  $("#new-room-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const error = $(".form-error", form);
    try {
      const room = await api("POST", "/api/rooms/", {
        name: form.elements.name.value,
        kind: form.elements.private.checked ? "private" : "public",
      });
      showError(error, "");
      form.reset();
      form.closest("details").open = false;
      upsertRoom(room);
      if (state.socket && state.authenticated) joinRoom(room.id);
      openRoom(room.id);
    } catch (failure) {
      showError(error, failure.message);
    }
  });

  $("#new-direct-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const error = $(".form-error", form);
    const wanted = form.elements.username.value.trim().toLowerCase();
    try {
      const found = await api("GET", `/api/users/?search=${encodeURIComponent(wanted)}&limit=50`);
      const user = found.results.find((u) => u.username.toLowerCase() === wanted);
      if (!user) throw new Error("No user with that username.");
      const room = await api("POST", "/api/direct/", { user_id: user.id });
      showError(error, "");
      form.reset();
      form.closest("details").open = false;
      if (user.is_online) state.online.add(user.id);
      upsertRoom(room);
      if (state.socket && state.authenticated) joinRoom(room.id);
      openRoom(room.id);
    } catch (failure) {
      showError(error, failure.message);
    }
  });

  $("#new-direct-username").addEventListener("input", async (event) => {
    const search = event.currentTarget.value.trim();
    if (search.length < 2) return;
    try {
      const found = await api("GET", `/api/users/?search=${encodeURIComponent(search)}&limit=10`);
      $("#user-suggestions").replaceChildren(
        ...found.results.filter((u) => u.id !== ME.id).map((u) => h("option", { value: u.username, label: nameOf(u) })),
      );
    } catch {
      /* suggestions are a convenience */
    }
  });

  $("#browse-rooms").addEventListener("click", async () => {
    const list = el.publicRooms;
    if (!list.hidden) {
      list.hidden = true;
      return;
    }
    await loadRooms();
    const open = [...state.rooms.values()].filter((r) => r.kind === "public" && !isMember(r) && !r.is_archived);
    list.replaceChildren(
      ...(open.length
        ? open.map((room) =>
            h("li", { "data-room-id": room.id },
              h("span", { class: "room-name", text: room.name }),
              h("button", { type: "button", class: "join-button", text: "Join",
                onclick: async () => {
                  const joined = await api("POST", `/api/rooms/${room.id}/join/`);
                  upsertRoom(joined);
                  list.hidden = true;
                  if (state.socket && state.authenticated) joinRoom(room.id);
                  openRoom(room.id);
                } })))
        : [h("li", { class: "empty", text: "You are in every public room." })]),
    );
    list.hidden = false;
  });

  // ------------------------------------------------------------------ composer

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
  $(".cancel-reply", el.replyBanner).addEventListener("click", () => {
    state.replyTo = null;
    renderReplyBanner();
  });
  el.messages.addEventListener("scroll", () => {
    const info = state.history.get(state.current);
    if (el.messages.scrollTop < 80 && info && info.hasMore && !info.loading && info.oldestSeq) {
      loadHistory(state.current, info.oldestSeq);
    }
  });
  $("#toggle-sidebar").addEventListener("click", () => app.classList.toggle("show-sidebar"));
  $("#toggle-members").addEventListener("click", () => app.classList.toggle("show-members"));
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") scheduleRead();
  });
  window.addEventListener("online", () => {
    if (!state.socket) connect();
  });
  window.addEventListener("offline", () => setConnection("offline", "Offline"));
  setInterval(renderTyping, 1000);

  // --------------------------------------------------------------------- start

  (async () => {
    try {
      await loadRooms();
    } catch (error) {
      setConnection("offline", "Could not load rooms");
      setTimeout(() => location.reload(), 5000);
      return;
    }
    // Everyone is in General: a newcomer joins it on their first visit.
    const general = [...state.rooms.values()].find((r) => r.name === "General" && r.kind === "public");
    if (general && !isMember(general) && !general.is_archived) {
      try {
        upsertRoom(await api("POST", `/api/rooms/${general.id}/join/`));
      } catch {
        /* the room list still works without it */
      }
    }
    connect();
    const rooms = [...state.rooms.values()].filter(isMember);
    const first = (general && isMember(state.rooms.get(general.id)) && general) || rooms[0];
    if (first) openRoom(first.id);
    else el.title.textContent = "Join or create a room";
  })();
})();
