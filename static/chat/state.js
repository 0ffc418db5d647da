// The page's shared state. Every field the modules share is declared here, with its
// initial value; the object is sealed, so a field set anywhere else that is not declared
// here throws instead of appearing. Modules import `state` (and `ME`) and change fields.

const app = document.getElementById("app");

/** The signed-in user, as the template rendered it on `#app`. */
export const ME = Object.freeze({
  id: Number(app.dataset.userId),
  username: app.dataset.username,
  display_name: app.dataset.displayName,
});

export const state = Object.seal({
  rooms: new Map(), // room id -> room (REST shape, with peer and is_general)
  current: null, // id of the open room, null before one opens
  messages: new Map(), // room id -> Map(message id -> message)
  pending: new Map(), // client_id -> message sent but not yet acknowledged
  history: new Map(), // room id -> {oldestSeq, hasMore, loading, loaded}
  lastPos: new Map(), // room id -> highest stream position applied
  recovering: new Set(), // room ids with a `join … after` (recovery) under way
  online: new Set(), // user ids known to be online
  typing: new Map(), // room id -> Map(user id -> {name, until})
  memberList: [], // members of the open room (REST shape), as last loaded
  replyTo: null, // the message the composer replies to, or null
  attachments: [], // uploaded, not yet sent: {id, name, …}
  socket: null, // the live WebSocket, null while disconnected
  authenticated: false, // the current socket has received `authenticated`
  reconnected: false, // a socket was authenticated before: the next one is a reconnect
  backoff: 1000, // ms before the next reconnect attempt (doubles, capped at 30 s)
  lastTypingSent: 0, // when "typing" was last sent (ms since epoch), 0 after "stopped"
  readTimer: null, // the debounce timer of the read marker
});
