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

// Emit with an ack; resolve with a successful ack, or reject with an Error whose `code` is the
// ack's error code, or "timeout" when no ack came.
export async function call(socket, event, payload) {
  let ack;
  try {
    ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck(event, payload);
  } catch {
    throw Object.assign(new Error("No answer from the server; try again."), { code: "timeout" });
  }
  if (!ack.ok) throw Object.assign(new Error(ack.error.message + ` (${ack.error.code})`), { code: ack.error.code });
  return ack;
}

// The same, showing the error to the reader: for what the reader asked for.
export async function request(socket, event, payload) {
  try {
    return await call(socket, event, payload);
  } catch (error) {
    showError(error.message);
    throw error;
  }
}
