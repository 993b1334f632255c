// The external emitter for the Node server: @socket.io/redis-emitter, publishing
// COUNT timestamped `tick` events to ROOM in /bench, back to back.
import { Emitter } from "@socket.io/redis-emitter";
import { createClient } from "redis";

const [, , redisUrl, key, room, count] = process.argv;
const client = createClient({ url: redisUrl });
await client.connect();
const bench = new Emitter(client, { key }).of("/bench");
for (let seq = 0; seq < Number(count); seq++) {
  bench.to(room).emit("tick", { seq, sent: performance.timeOrigin + performance.now() });
}
await client.quit(); // after every queued PUBLISH has been sent
