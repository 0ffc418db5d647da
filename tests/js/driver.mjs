// Drives real socket.io-client v4 sockets for tests/e2e/test_socketio.py.
// stdin: one JSON command a line; stdout: one JSON report a line.
//   {"op":"connect","id":"a","url":"http://…","opts":{…}}  -> connect | connect_error
//   {"op":"emit","id":"a","event":"join","data":{…},"seq":1} -> (with seq) ack {seq, data}
//   {"op":"close","id":"a"}                                -> disconnect
// Every event a socket receives is reported as {"id","kind":"event","event","data"};
// "upgrade" reports the transport after an upgrade to WebSocket.
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const sockets = new Map();
const report = (fields) => process.stdout.write(JSON.stringify(fields) + "\n");

function connect({ id, url, opts }) {
  const socket = io(url, { reconnection: false, forceNew: true, ...opts });
  sockets.set(id, socket);
  socket.on("connect", () => report({ id, kind: "connect", transport: socket.io.engine.transport.name }));
  socket.on("connect_error", (err) => report({ id, kind: "connect_error", message: err.message, data: err.data ?? null }));
  socket.on("disconnect", (reason) => report({ id, kind: "disconnect", reason }));
  socket.io.on("open", () =>
    socket.io.engine.on("upgrade", (transport) => report({ id, kind: "upgrade", transport: transport.name })),
  );
  socket.onAny((event, ...args) => report({ id, kind: "event", event, data: args.length ? args[0] : null }));
}

createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  const socket = sockets.get(command.id);
  if (command.op === "connect") connect(command);
  else if (command.op === "emit") {
    if (command.seq === undefined) socket.emit(command.event, command.data);
    else socket.emit(command.event, command.data, (answer) => report({ id: command.id, kind: "ack", seq: command.seq, data: answer }));
  } else if (command.op === "close") socket.close();
}).on("close", () => {
  for (const socket of sockets.values()) socket.close();
  process.exit(0);
});
report({ kind: "ready", version: "4" });
