// The public rooms to join or leave (joining is a choice, except general), the current room's
// Leave button, and the form that creates a room.
import { on } from "./events.js";
import { created, joinRoom, partRoom } from "./rooms.js";
import { $, showError } from "./socket.js";
import { GENERAL, rooms, view } from "./store.js";

const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
const toggle = $("#browse-rooms");
const panel = $("#room-browser");

function action(label, name, run) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.setAttribute("aria-label", `${label} #${name}`);
  button.addEventListener("click", run);
  return button;
}

function render() {
  const publicRooms = [...rooms.values()].filter((state) => !state.info.private);
  publicRooms.sort((a, b) => a.info.name.localeCompare(b.info.name));
  $("#public-rooms").replaceChildren(
    ...publicRooms.map((state) => {
      const { name } = state.info;
      const item = document.createElement("li");
      item.dataset.room = name;
      const title = document.createElement("span");
      title.className = "room-name";
      title.textContent = `# ${name}`;
      const count = document.createElement("span");
      count.className = "members-count";
      const members = state.info.members?.length ?? 0;
      count.textContent = `${members} member${members === 1 ? "" : "s"}`;
      item.append(title, count);
      if (!state.member) item.append(action("Join", name, () => joinRoom(name)));
      else if (name !== GENERAL) item.append(action("Leave", name, () => partRoom(name).catch(() => {})));
      else item.append(Object.assign(document.createElement("span"), { className: "members-count", textContent: "always joined" }));
      return item;
    }),
  );
  const current = view.current && rooms.get(view.current);
  $("#leave-room").hidden = !current || current.info.private || current.info.name === GENERAL;
}

toggle.addEventListener("click", () => {
  const open = toggle.getAttribute("aria-expanded") !== "true";
  toggle.setAttribute("aria-expanded", String(open));
  panel.hidden = !open;
  if (open) panel.querySelector("button")?.focus();
});

$("#leave-room").addEventListener("click", () => partRoom(view.current).catch(() => {}));

$("#new-room").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const members = form.members.value.split(",").map((name) => name.trim()).filter(Boolean);
  const response = await fetch("/api/rooms", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
    body: JSON.stringify({ name: form.name.value.trim(), private: form.private.checked, members }),
  });
  const body = await response.json();
  if (!response.ok) return showError(body.error.message);
  form.reset();
  await created(body);
});

on("rooms-changed", render);
on("room-shown", render);
