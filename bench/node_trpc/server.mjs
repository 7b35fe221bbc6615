// The official Node tRPC server, as its docs show it, serving execution.getExecutionStatus.
//
// @trpc/server's standalone adapter on node:http, superjson, a zod input, and better-sqlite3:
// the same queries and the same JSON as bench/baseline_starlette.py, read synchronously on the
// event loop (better-sqlite3 has no worker round trip, which favours this server). The issue
// quotes "about 5,000 requests/s" for it; this measures it on the machine the bench runs on.
//     node bench/node_trpc/server.mjs PORT FILE.db
import http from 'node:http';

import { initTRPC, TRPCError } from '@trpc/server';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import Database from 'better-sqlite3';
import superjson from 'superjson';
import { z } from 'zod';

const [port, file] = process.argv.slice(2);
if (!port || !file) {
  console.error('usage: node server.mjs PORT FILE.db');
  process.exit(2);
}

const db = new Database(file, { readonly: true, fileMustExist: true });
const executionRecord = db.prepare('SELECT record FROM executions WHERE id = ?').pluck();
const stepRecords = db.prepare('SELECT record FROM steps WHERE execution_id = ? ORDER BY idx').pluck();
const newestLogs = db.prepare(
  'SELECT seq, entry FROM logs WHERE execution_id = ? ORDER BY seq DESC LIMIT 100',
);
const leafOutputs = db.prepare(
  'SELECT node_id, output, artifacts FROM steps' +
    ' WHERE execution_id = ? AND is_leaf = 1 AND output IS NOT NULL ORDER BY idx',
);

function executionStatus(executionId) {
  const record = executionRecord.get(executionId);
  if (record === undefined) {
    throw new TRPCError({ code: 'NOT_FOUND', message: `Execution ${executionId} not found` });
  }
  const status = JSON.parse(record);
  status.steps = stepRecords.all(executionId).map((step) => JSON.parse(step));
  const logs = newestLogs.all(executionId);
  status.logs = logs.map((row) => JSON.parse(row.entry)).reverse();
  status.logsTruncated = logs.length > 0 && logs[0].seq > logs.length; // seq counts from 1
  status.finalOutputs = leafOutputs.all(executionId).map((row) => ({
    nodeId: row.node_id,
    output: JSON.parse(row.output),
    artifacts: JSON.parse(row.artifacts),
  }));
  return status;
}

const t = initTRPC.create({ transformer: superjson });
const router = t.router({
  execution: t.router({
    getExecutionStatus: t.procedure
      .input(z.object({ executionId: z.string() }))
      .query(({ input }) => executionStatus(input.executionId)),
  }),
});

const trpc = createHTTPHandler({ router, basePath: '/api/trpc/' });

http
  .createServer((req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"status":"ok"}');
      return;
    }
    trpc(req, res);
  })
  .listen(Number(port), '127.0.0.1');
