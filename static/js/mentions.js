// @name mentions of the reader, as rich-text.js highlights them and notify.js notifies of them.
import { me } from "./store.js";

// Whether a message says @name of the reader (not inside an address such as x@name.org).
export function mentionsMe(text) {
  const pattern = /(^|[^\w@])@([A-Za-z0-9_.-]+)/g;
  for (const match of text.matchAll(pattern)) if (mentionedName(match[2]) === me) return true;
  return false;
}

// The name an @token stands for: trailing dots and dashes are punctuation unless the name has them.
export function mentionedName(token) {
  if (token.toLowerCase() === me.toLowerCase()) return me;
  const trimmed = token.replace(/[.-]+$/, "");
  return trimmed.toLowerCase() === me.toLowerCase() ? me : trimmed;
}
