// Loaded before the Socket.IO Admin UI (/admin/): the UI connects where its own
// localStorage keys say, else it asks for a server URL. Point it at this server's
// Socket.IO endpoint and /admin namespace, on the transports the server allows.
(function () {
  "use strict";
  var wsOnly = document.currentScript.dataset.wsOnly === "1";
  try {
    localStorage.setItem("server_url", window.location.origin);
    localStorage.setItem("path", "/socket.io");
    localStorage.setItem("namespace", "/admin");
    localStorage.setItem("parser", "default"); // JSON: the server speaks no msgpack
    localStorage.setItem("ws_only", wsOnly ? "true" : "false");
  } catch (error) {
    // No localStorage (a private window may refuse it): the UI asks for the URL instead.
  }
})();
