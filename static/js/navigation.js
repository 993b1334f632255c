// Which room is shown: the title, the room jobs.js exports, and the "room-shown" news for the views.
import { emit } from "./events.js";
import { lockIcon } from "./icons.js";
import { $, root, showError } from "./socket.js";
import { roomState, view } from "./store.js";

export function showRoom(name) {
  view.current = name;
  root.dataset.room = name; // jobs.js starts exports of this room
  const { info } = roomState(name);
  $("#room-title").textContent = name;
  $("#room-kind").replaceChildren(info.private ? lockIcon() : "#");
  $("#room-private").hidden = !info.private;
  showError("");
  emit("room-shown", { room: name });
  $("#text").focus();
}
