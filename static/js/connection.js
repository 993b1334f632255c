// The connection indicator in the top bar: connecting, connected, catching up, reconnecting.
import { $ } from "./socket.js";

const LABELS = {
  connecting: "connecting…",
  connected: "connected",
  "catching-up": "catching up…", // connected, with a join or a hole fill under way
  reconnecting: "reconnecting…",
};

let link = "connecting"; // connecting, connected or reconnecting
let catchingUp = 0; // joins and hole fills under way

export function setConnection(state) {
  link = state;
  const shown = state === "connected" && catchingUp ? "catching-up" : state;
  $("#connection").textContent = LABELS[shown];
  $("#connection").dataset.state = shown;
}

// Run a join or a fill with the indicator saying "catching up…" meanwhile.
export async function catchUp(work) {
  catchingUp += 1;
  setConnection(link);
  try {
    return await work();
  } finally {
    catchingUp -= 1;
    setConnection(link);
  }
}
