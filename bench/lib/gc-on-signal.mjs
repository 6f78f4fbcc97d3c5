// Loaded into the measured server by the bench (`node --expose-gc --import` this file), and
// never by `npm start`: SIGWINCH runs a full garbage collection. The held-poll figure reads
// the server's memory after one, so it counts what the polls really retain rather than
// whatever garbage the last scavenges happened to leave behind. SIGWINCH because its
// default action is to do nothing, and the server's graceful shutdown listens to SIGUSR2.
process.on('SIGWINCH', () => globalThis.gc?.())
