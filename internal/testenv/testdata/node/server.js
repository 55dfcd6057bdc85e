'use strict';
// node server.js: one process serving the app, or with NODE_WORKERS > 1 a
// cluster: this process forks the workers, which share the listening port
// (the primary hands connections out round-robin), and starts a new one
// when a worker that was serving dies. A worker that dies before it
// listens (a port taken, a bad setting) stops the whole cluster.
const cluster = require('node:cluster');
const config = require('./config');

if (config.workers > 1 && cluster.isPrimary) {
  let stopping = false;
  let exitCode = 0;
  const listening = new Set();
  console.error(`primary ${process.pid}: starting ${config.workers} workers`);
  for (let i = 0; i < config.workers; i++) cluster.fork();
  cluster.on('listening', (worker) => listening.add(worker.id));
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers).length === 0) process.exit(exitCode);
      return;
    }
    if (!listening.has(worker.id)) {
      console.error(`worker ${worker.process.pid} exited (${signal || code}) before listening; stopping`);
      stop(1);
      return;
    }
    console.error(`worker ${worker.process.pid} died (${signal || code}); starting another`);
    cluster.fork();
  });
  function stop(code) {
    stopping = true;
    exitCode = code;
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
    setTimeout(() => process.exit(code), 3000).unref();
    if (Object.keys(cluster.workers).length === 0) process.exit(code);
  }
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));
} else {
  require('./app').start();
}
