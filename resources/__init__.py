"""HTTP and Socket.IO: the JSON API (api/), the namespaces and Socket.IO internals (socket/), the pages' forms."""
