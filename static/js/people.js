// The people panel of the shown room: who is online, a private room's members, and who is typing.
import { chat } from "./chat-socket.js";
import { on } from "./events.js";
import { $ } from "./socket.js";
import { me, roomState, view } from "./store.js";

const TYPING_FORGET_MS = 6000; // a typist who went quiet without saying so

function names(list, people) {
  list.replaceChildren(
    ...[...people].sort().map((name) => {
      const item = document.createElement("li");
      item.textContent = name;
      return item;
    }),
  );
}

function render() {
  if (view.current === null) return;
  const state = roomState(view.current);
  names($("#online"), state.online);
  $("#online-count").textContent = state.online.size;
  const members = state.info.private ? state.info.members ?? [] : [];
  $("#members-section").hidden = !state.info.private;
  names($("#members"), members);
  const typing = [...state.typing.keys()].filter((name) => name !== me);
  $("#typing").textContent = typing.length ? `${typing.join(", ")} ${typing.length > 1 ? "are" : "is"} typing…` : "";
}

const renderIfShown = (room) => room === view.current && render();

on("room-shown", render);
on("people-changed", ({ room }) => renderIfShown(room));
on("rooms-changed", () => view.current !== null && render()); // a private room's members

chat.on("presence", ({ room, user, status }) => {
  const state = roomState(room);
  if (status === "joined" || status === "online") state.online.add(user);
  else state.online.delete(user);
  renderIfShown(room);
});

chat.on("typing", ({ room, user, typing }) => {
  const state = roomState(room);
  clearTimeout(state.typing.get(user));
  if (typing) {
    const forget = () => {
      state.typing.delete(user);
      renderIfShown(room);
    };
    state.typing.set(user, setTimeout(forget, TYPING_FORGET_MS));
  } else state.typing.delete(user);
  renderIfShown(room);
});

// A message from a typist ends their typing.
on("messages-shown", ({ room, messages }) => {
  const state = roomState(room);
  let changed = false;
  for (const { author } of messages) {
    if (state.typing.has(author)) {
      clearTimeout(state.typing.get(author));
      state.typing.delete(author);
      changed = true;
    }
  }
  if (changed) renderIfShown(room);
});
