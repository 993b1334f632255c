// What app.js and jobs.js share: connecting a namespace, and events answered by the protocol's acks.
import { io } from "/vendor/socket.io/socket.io.esm.min.js";

export const $ = (selector) => document.querySelector(selector);
export const root = $(".app");
const ACK_TIMEOUT_MS = 10000;

export function connect(namespace) {
  return io(namespace, { transports: root.dataset.transports.split(",") });
}

export function showError(text) {
  $("#error").textContent = text || "";
}

// Emit with an ack; resolve with a successful ack, or show the error and reject.
export async function request(socket, event, payload) {
  try {
    const ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck(event, payload);
    if (!ack.ok) throw new Error(ack.error.message + ` (${ack.error.code})`);
    return ack;
  } catch (error) {
    showError(error.message === "operation has timed out" ? "No answer from the server; try again." : error.message);
    throw error;
  }
}
