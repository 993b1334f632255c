"""The benchmark (bench/README.md): its runner, load generator, peer servers and Roomcast's /bench namespace."""
