// One message as a list item: its day separator, the "new messages" line, the author and time
// (once per group), the text with links and mentions, "(edited)", and Edit/Delete on one's own.
import { canChange } from "./editing.js";
import { mentionsMe } from "./mentions.js";
import { richText } from "./rich-text.js";
import { me } from "./store.js";

const GROUP_MS = 5 * 60 * 1000; // one author's messages within 5 minutes share a header

const day = (message) => new Date(message.created_at).toDateString();

function dayLabel(message) {
  const date = new Date(message.created_at);
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (date.toDateString() === today.toDateString()) return "Today";
  if (date.toDateString() === yesterday.toDateString()) return "Yesterday";
  return date.toLocaleDateString([], { weekday: "long", day: "numeric", month: "long", year: "numeric" });
}

// Whether a message continues the group of the one above it (same author, same day, within 5 minutes).
function continues(message, previous) {
  return (
    previous !== undefined &&
    previous.author === message.author &&
    day(previous) === day(message) &&
    Date.parse(message.created_at) - Date.parse(previous.created_at) < GROUP_MS
  );
}

function separator(className, text) {
  const line = document.createElement("div");
  line.className = className;
  const label = document.createElement("span");
  label.textContent = text;
  line.append(label);
  return line;
}

function header(message) {
  const head = document.createElement("div");
  head.className = "message-head";
  const author = document.createElement("b");
  author.className = "author";
  author.textContent = message.author;
  const time = document.createElement("time");
  time.dateTime = message.created_at;
  time.textContent = new Date(message.created_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  time.title = new Date(message.created_at).toLocaleString();
  head.append(author, " ", time);
  return head;
}

function body(message) {
  const paragraph = document.createElement("div");
  paragraph.className = "message-body";
  const text = document.createElement("span");
  text.className = "text";
  if (message.deleted) {
    const gone = document.createElement("em");
    gone.textContent = "message deleted";
    text.append(gone);
  } else text.append(richText(message.text)); // text nodes and safe links, never HTML
  paragraph.append(text);
  if (message.edited_at && !message.deleted) {
    const edited = document.createElement("span");
    edited.className = "edited";
    edited.textContent = " (edited)";
    edited.title = `edited ${new Date(message.edited_at).toLocaleString()}`;
    paragraph.append(edited);
  }
  return paragraph;
}

function actions() {
  const bar = document.createElement("div");
  bar.className = "message-actions";
  for (const [action, label] of [["edit", "Edit"], ["delete", "Delete"]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.dataset.action = action;
    button.textContent = label;
    bar.append(button);
  }
  return bar;
}

// previous: the message shown right above (undefined for the first one shown); newLineSeq: where "new messages" goes.
export function messageItem(message, previous, newLineSeq) {
  const item = document.createElement("li");
  item.className = "message";
  item.dataset.id = message.id;
  item.dataset.seq = message.seq;
  if (previous === undefined || day(previous) !== day(message)) item.append(separator("day-separator", dayLabel(message)));
  if (message.seq === newLineSeq) item.append(separator("new-line", "New messages"));
  const grouped = continues(message, previous) && message.seq !== newLineSeq;
  item.classList.toggle("continued", grouped);
  item.classList.toggle("mine", message.author === me);
  item.classList.toggle("deleted", Boolean(message.deleted));
  item.classList.toggle("mentions-me", !message.deleted && message.author !== me && mentionsMe(message.text));
  item.append(header(message), body(message));
  if (canChange(message)) item.append(actions());
  return item;
}
