// Drives the Node package redis-jwt 1.4.0 for tests/test_interop.py.
//
// Protocol: one JSON command per line on stdin, one JSON reply per line on stdout:
//   {"op": "sign", "mode": "single"|"multi", "id": "...", "options": {...}} -> token
//   {"op": "verify", "mode": ..., "token": "...", "withSession": bool}   -> object | false
//   {"op": "destroy", "key": "..."}                                     -> 1 | null
//   {"op": "count", "id": "..."} / {"op": "values", "id": "..."}
// Replies are {"ok": true, "value": ...} or {"ok": false, "error": "..."}.
//
// Redis host and port come from RJWT_HOST / RJWT_PORT, the secret from RJWT_SECRET.
// The package's `kea` option is deliberately not used: it shells out to redis-cli on
// the default port. The driver is never end()ed: redis-jwt pings it 2 s after
// construction and crashes the process if it was; the process simply exits when
// stdin closes.
'use strict';

const readline = require('readline');
const RedisJwt = require('redis-jwt');

const config = {
  host: process.env.RJWT_HOST || '127.0.0.1',
  port: Number(process.env.RJWT_PORT),
  secret: process.env.RJWT_SECRET,
};
const instances = {
  single: new RedisJwt({ ...config, multiple: false }),
  multi: new RedisJwt({ ...config, multiple: true }),
};
for (const [name, instance] of Object.entries(instances)) {
  instance.on('error', (err) => process.stderr.write(`${name}: redis error ${err}\n`));
}

function rjwtOf(token) {
  const payload = Buffer.from(token.split('.')[1], 'base64').toString('utf8');
  return JSON.parse(payload).rjwt;
}

async function handle(command) {
  const r = instances[command.mode || 'single'];
  switch (command.op) {
    case 'sign': {
      const token = await r.sign(command.id, command.options);
      // sign() resolves before Redis has answered SETEX; a reply to a later command
      // on the same connection proves the write is done.
      await r.call().exists(rjwtOf(token));
      return token;
    }
    case 'verify':
      return r.verify(command.token, command.withSession);
    case 'destroy':
      return r.call().destroy(command.key);
    case 'count':
      return r.call().getCountByPattern(command.id);
    case 'values':
      return r.call().getValuesByPattern(command.id);
    case 'ready':
      await Promise.all(Object.values(instances).map((i) => i.call().exists('ready')));
      return true;
    default:
      throw new Error(`unknown op ${command.op}`);
  }
}

const lines = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on('line', (line) => {
  // One command at a time, in order.
  queue = queue.then(async () => {
    let reply;
    try {
      reply = { ok: true, value: await handle(JSON.parse(line)) };
    } catch (err) {
      reply = { ok: false, error: String(err) };
    }
    process.stdout.write(`${JSON.stringify(reply)}\n`);
  });
});
lines.on('close', () => queue.then(() => process.exit(0)));
