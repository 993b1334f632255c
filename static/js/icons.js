// Small inline icons built as DOM (no emoji font needed): each hidden from screen readers, who get words.
const SVG = "http://www.w3.org/2000/svg";

// A padlock, for private rooms.
export function lockIcon() {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon private-icon");
  const body = document.createElementNS(SVG, "rect");
  for (const [name, value] of Object.entries({ x: 3, y: 7, width: 10, height: 8, rx: 1.5 })) body.setAttribute(name, value);
  const shackle = document.createElementNS(SVG, "path");
  shackle.setAttribute("d", "M5 7V5a3 3 0 0 1 6 0v2");
  shackle.setAttribute("fill", "none");
  shackle.setAttribute("stroke", "currentColor");
  shackle.setAttribute("stroke-width", "1.6");
  body.setAttribute("fill", "currentColor");
  svg.append(shackle, body);
  return svg;
}

// A room's name with its kind: "# name", or a padlock and "private room" for screen readers.
export function roomLabel(info) {
  const label = document.createDocumentFragment();
  if (info.private) {
    const words = document.createElement("span");
    words.className = "visually-hidden";
    words.textContent = "private room ";
    label.append(lockIcon(), words);
  } else {
    const hash = document.createElement("span");
    hash.className = "room-hash";
    hash.setAttribute("aria-hidden", "true");
    hash.textContent = "#";
    label.append(hash);
  }
  const name = document.createElement("span");
  name.className = "room-label-name";
  name.textContent = info.name;
  label.append(name);
  return label;
}
