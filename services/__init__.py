"""The rules under HTTP and Socket.IO: accounts, chat, presence, throttles, channels (names, emit), jobs."""
