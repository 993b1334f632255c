// The page's modules tell each other what happened through these events, so none reaches into another's DOM.
const bus = new EventTarget();

// Say that something happened: listeners get the detail object.
export function emit(type, detail = {}) {
  bus.dispatchEvent(new CustomEvent(type, { detail }));
}

export function on(type, listener) {
  bus.addEventListener(type, (event) => listener(event.detail));
}
