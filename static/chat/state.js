// The page's shared state. Every field the modules share is declared here, with its
// initial value; the object is sealed, so a field set anywhere else that is not declared
// here throws instead of appearing. Modules import `state` (and `ME`) and change fields.

const app = document.getElementById("app");

/** The signed-in user, as the template rendered it on `#app`. Sealed, not frozen: the
 *  profile dialog changes `display_name` and `avatar`. */
export const ME = Object.seal({
  id: Number(app.dataset.userId),
  username: app.dataset.username,
  display_name: app.dataset.displayName,
  avatar: app.dataset.avatar || undefined,
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
  readTimers: new Map(), // room id -> the debounce timer of its read marker
  // The user's own stream position last applied (SPEC 12): from the page, as it was
  // before the room list was read, so the first socket replays what changed since.
  userPos: app.dataset.userPos ? Number(app.dataset.userPos) : null,
  present: new Map(), // room id -> how many users are present (`room_users`/`room_presence` count)
  presentUsers: new Map(), // room id -> the users present that the server listed (capped)
  bigRooms: new Set(), // rooms whose presence the server caps and batches (SPEC "big rooms")
  memberNext: null, // the next page of the open room's member list, or null
  credentialsChange: null, // a promise while this page changes the password, else null
});
