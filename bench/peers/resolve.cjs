'use strict';
/**
 * Finds a peer's npm package: first where Node finds it from the repo (the repo's own
 * dependencies, e.g. ws and socket.io), then in the folder named by BENCH_PEERS_DIR
 * (a scratch install such as `npm i pomelo@2.2.7 socket.io@4 ws@8 bufferutil` there),
 * so a peer can be benchmarked without adding it to the repo.
 */
const { createRequire } = require('node:module');
const path = require('node:path');

function peerRequire(name) {
  try {
    return require(name);
  } catch (err) {
    const dir = process.env.BENCH_PEERS_DIR;
    if (!dir || err.code !== 'MODULE_NOT_FOUND') throw err;
    return createRequire(path.join(path.resolve(dir), 'package.json'))(name);
  }
}

/** The require function of the folder that holds `name` (to load its siblings as it sees them). */
function requireBeside(name) {
  let entry;
  try {
    entry = require.resolve(name);
  } catch (err) {
    const dir = process.env.BENCH_PEERS_DIR;
    if (!dir) throw err;
    entry = createRequire(path.join(path.resolve(dir), 'package.json')).resolve(name);
  }
  return createRequire(entry);
}

/** `--name value` pairs of argv into an object of strings. */
function parseFlags(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) out[a.slice(2)] = 'true';
      else out[a.slice(2)] = argv[++i];
    }
  }
  return out;
}

/** Reads a JSON request body, at most `limit` bytes. */
function readBody(req, limit, cb) {
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > limit) req.destroy();
    else chunks.push(c);
  });
  req.on('end', () => {
    let value;
    try {
      value = JSON.parse(Buffer.concat(chunks, size).toString('utf8'));
    } catch (err) {
      cb(err);
      return;
    }
    cb(null, value);
  });
}

module.exports = { peerRequire, requireBeside, parseFlags, readBody };
