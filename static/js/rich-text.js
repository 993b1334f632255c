// A message's text as DOM nodes: http(s) addresses become links, @me is highlighted; all else is text.
import { mentionedName } from "./mentions.js";
import { me } from "./store.js";

// An address runs to the next space; trailing punctuation is the sentence's, not the address's.
const TOKENS = /\bhttps?:\/\/[^\s<>"]+|(?<=^|[^\w@])@[A-Za-z0-9_.-]+/gi;
const TRAILING = /[.,;:!?'")\]}]+$/;

function link(address) {
  let url;
  try {
    url = new URL(address);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  const anchor = document.createElement("a");
  anchor.href = url.href;
  anchor.rel = "noopener noreferrer";
  anchor.target = "_blank";
  anchor.textContent = address;
  return anchor;
}

function mention(token) {
  const name = mentionedName(token.slice(1));
  if (name !== me) return null;
  const mark = document.createElement("mark");
  mark.className = "mention";
  mark.textContent = token.slice(0, name.length + 1);
  return [mark, token.slice(name.length + 1)];
}

export function richText(text) {
  const fragment = document.createDocumentFragment();
  let from = 0;
  for (const match of text.matchAll(TOKENS)) {
    let token = match[0];
    let node = null;
    let rest = "";
    if (token.startsWith("@")) {
      const found = mention(token);
      if (found) [node, rest] = found;
    } else {
      const trailing = token.match(TRAILING)?.[0] ?? "";
      token = token.slice(0, token.length - trailing.length);
      node = link(token);
      rest = trailing;
    }
    if (!node) continue;
    fragment.append(document.createTextNode(text.slice(from, match.index)), node);
    if (rest) fragment.append(document.createTextNode(rest));
    from = match.index + match[0].length;
  }
  fragment.append(document.createTextNode(text.slice(from)));
  return fragment;
}
