// The chat page: rooms, live messages over one WebSocket, recovery after a drop.
// Native ES modules, no framework and no build step; templates/chat.html loads this one.
//
//   state.js            the shared state (every field declared there) and ME
//   dom.js              element helpers, the page's fixed elements
//   api.js              REST calls (session cookie, CSRF, errors)
//   socket.js           the WebSocket: reconnect, recovery with `after`, frame dispatch
//   rooms.js            the room list: labels, unread badges, presence dots, opening
//   members.js          the member list and who is online
//   messages.js         the message pane: store, history, drawing a message
//   message-actions.js  reactions, edit, delete, reply
//   composer.js         sending, uploads, typing
//   sidebar.js          new room, new direct message, browse public rooms

import { api } from "./api.js";
import { initComposer } from "./composer.js";
import { el } from "./dom.js";
import { loadOlderOnScroll } from "./messages.js";
import { defaultRoom, generalRoom, isMember, loadRooms, openRoom, upsertRoom } from "./rooms.js";
import { initSidebar } from "./sidebar.js";
import { connect, initConnection, setConnection } from "./socket.js";

async function start() {
  try {
    await loadRooms();
  } catch {
    setConnection("offline", "Could not load rooms");
    setTimeout(() => location.reload(), 5000);
    return;
  }
  // Everyone is in General: a newcomer joins it on their first visit.
  const general = generalRoom();
  if (general && !isMember(general) && !general.is_archived) {
    try {
      upsertRoom(await api("POST", `/api/rooms/${general.id}/join/`));
    } catch {
      /* the room list still works without it */
    }
  }
  connect();
  const first = defaultRoom();
  if (first) openRoom(first.id);
  else el.title.textContent = "Join or create a room";
}

initSidebar();
initComposer();
loadOlderOnScroll();
initConnection();
start();
