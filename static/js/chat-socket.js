// The page's one /chat connection, and how its events are asked with an ack.
import { call, connect, request } from "./socket.js";

export const chat = connect("/chat");

// Ask, showing a failure to the reader: for what the reader asked for.
export const ask = (event, payload) => request(chat, event, payload);

// Ask quietly: for what the page does by itself (a failure is the caller's to handle).
export const askQuietly = (event, payload) => call(chat, event, payload);

let connections = 0; // counts connects: a retry loop of an earlier connection stops

export const connectionNumber = () => connections;
chat.on("connect", () => {
  connections += 1;
});
