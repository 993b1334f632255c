// Roomcast's page over Socket.IO /chat: wires the modules (each owns one part) to the connection.
import "./announcer.js";
import { chat } from "./chat-socket.js";
import "./composer.js";
import { setConnection } from "./connection.js";
import "./notify.js";
import "./people.js";
import "./room-browser.js";
import "./room-list.js";
import { joinMyRooms } from "./rooms.js";
import { showError } from "./socket.js";
import { edited, joinAgain, receive } from "./sync.js";
import "./tabs.js";
import "./timeline.js";
import "./unread.js";

chat.on("connect", () => {
  setConnection("connected");
  showError("");
  joinMyRooms(); // on every (re)connect: join again with since_seq = the last seq shown
});

// The server may have lost live events (its Redis listener or publishes had a gap): catch up.
chat.on("resync", joinAgain);
chat.on("disconnect", (reason) => {
  setConnection("reconnecting");
  // The client does not reconnect by itself after the server's own disconnect (a
  // login that ended, elsewhere): connect again, and be sent to /login if refused.
  if (reason === "io server disconnect") setTimeout(() => chat.connect(), 500);
});
chat.io.on("reconnect_attempt", () => setConnection("reconnecting"));
chat.on("connect_error", (error) => {
  setConnection("reconnecting");
  if (error.message === "unauthorized") window.location.assign("/login");
});

chat.on("message", (message) => receive(message.room, [message], "live"));
chat.on("edited", edited);
setConnection("connecting");
