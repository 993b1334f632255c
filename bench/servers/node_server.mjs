// The reference implementation: Node.js socket.io 4 with @socket.io/redis-adapter,
// serving the same /bench handlers as Roomcast's resources/socket/bench.py.
// PORT and REDIS_URL from the environment; ADAPTER_KEY keeps runs apart in Redis.
import { createServer } from "node:http";

import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";
import { Server } from "socket.io";

const pub = createClient({ url: process.env.REDIS_URL });
const sub = pub.duplicate();
await Promise.all([pub.connect(), sub.connect()]);

const http = createServer((request, response) => {
  response.writeHead(request.url === "/healthz" ? 200 : 404).end();
});
const io = new Server(http, { adapter: createAdapter(pub, sub, { key: process.env.ADAPTER_KEY }) });

const invalid = { ok: false, error: { code: "invalid", message: "bad payload" } };
io.of("/bench").on("connection", (socket) => {
  socket.on("join", (payload, ack) => {
    if (typeof ack !== "function") return;
    if (typeof payload?.room !== "string") return ack(invalid);
    socket.join(payload.room);
    ack({ ok: true, room: payload.room });
  });
  socket.on("echo", (payload, ack) => {
    if (typeof ack !== "function") return;
    if (typeof payload?.sent !== "number") return ack(invalid);
    ack({ ok: true, sent: payload.sent, data: payload.data ?? null });
  });
});

http.listen(Number(process.env.PORT), "127.0.0.1");
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
