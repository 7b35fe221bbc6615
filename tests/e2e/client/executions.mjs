// Runs a blueprint end to end with the official tRPC client (httpBatchLink, superjson) and
// prints one JSON report to stdout: what each call returned and the HTTP requests it took.
//
//   node executions.mjs <baseUrl> <run|invalid>
//
// Anything unexpected (a failed call, a status that never ends, the 60 s deadline) exits
// nonzero with the reason on stderr.
import { createTRPCUntypedClient, httpBatchLink, TRPCClientError } from "@trpc/client";
import superjson from "superjson";

const DEADLINE_MS = 60_000;
const POLL_DEADLINE_MS = 30_000;
const POLL_EVERY_MS = 20;
const ENDPOINT = "/api/trpc";
const FINAL = new Set(["completed", "failed", "cancelled"]);

const [baseUrl, scenario] = process.argv.slice(2);
const url = baseUrl.replace(/\/$/, "") + ENDPOINT;
const requests = [];

async function recordingFetch(input, init) {
  const target = new URL(String(input));
  const request = {
    method: init?.method ?? "GET",
    paths: decodeURIComponent(target.pathname.slice(ENDPOINT.length + 1)).split(","),
    batch: target.searchParams.get("batch") === "1",
  };
  requests.push(request);
  const response = await fetch(input, init);
  request.status = response.status;
  return response;
}

const trpc = createTRPCUntypedClient({
  links: [httpBatchLink({ url, transformer: superjson, fetch: recordingFetch })],
});

// start fans out to two delays and a transform; they join, wait a little, and report reads them.
const FAN_OUT_FAN_IN = {
  name: "e2e fan-out fan-in",
  description: "two delays and a transform in parallel, then a join",
  nodes: [
    { id: "start", type: "noop" },
    { id: "slow", type: "delay", dependsOn: ["start"], config: { ms: 300 } },
    { id: "fast", type: "delay", dependsOn: ["start"], config: { ms: 100 } },
    {
      id: "pick",
      type: "transform",
      dependsOn: ["start"],
      config: { expression: "nodes.start.output.n" },
    },
    { id: "join", type: "noop", dependsOn: ["slow", "fast", "pick"] },
    { id: "settle", type: "delay", dependsOn: ["join"], config: { ms: 150 } },
    {
      id: "report",
      type: "transform",
      dependsOn: ["settle"],
      config: {
        template: {
          n: "{{ nodes.join.output.pick }}",
          slept: "{{ nodes.join.output.slow.sleptMs }}",
          who: "{{ metadata.who }}",
        },
      },
    },
  ],
};

const INVALID = {
  name: "e2e invalid",
  nodes: [
    { id: "a", type: "noop" },
    { id: "a", type: "noop" },
    { id: "b", type: "teleport" },
    { id: "c", type: "noop", dependsOn: ["ghost"] },
  ],
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function run() {
  const created = await trpc.mutation("blueprint.create", FAN_OUT_FAN_IN);
  const started = await trpc.mutation("execution.executeBlueprintWithLogging", {
    blueprintId: created.blueprintId,
    input: { n: 21 },
    metadata: { who: "e2e" },
  });
  const polls = [];
  const giveUpAt = Date.now() + POLL_DEADLINE_MS;
  let status;
  for (;;) {
    status = await trpc.query("execution.getExecutionStatus", {
      executionId: started.executionId,
    });
    polls.push({
      status: status.status,
      progress: status.progress,
      completedSteps: status.completedSteps,
    });
    if (FINAL.has(status.status)) break;
    if (Date.now() > giveUpAt) {
      throw new Error(`execution did not finish: ${JSON.stringify(status)}`);
    }
    await sleep(POLL_EVERY_MS);
  }
  // Issued together, so httpBatchLink sends them as one batch.
  const [listed, logs] = await Promise.all([
    trpc.query("execution.list", { blueprintId: created.blueprintId }),
    trpc.query("execution.getLogs", { executionId: started.executionId, level: "info" }),
  ]);
  return {
    created,
    started,
    polls,
    final: {
      id: status.id,
      status: status.status,
      progress: status.progress,
      totalSteps: status.totalSteps,
      completedSteps: status.completedSteps,
      error: status.error,
      metadata: status.metadata,
      finalOutputs: status.finalOutputs,
      blueprintId: status.blueprintId,
      blueprintVersion: status.blueprintVersion,
    },
    listed: listed.executions.map((e) => [e.executionId, e.status]),
    logCount: logs.logs.length,
  };
}

async function invalid() {
  let saved;
  try {
    saved = await trpc.mutation("blueprint.create", INVALID);
  } catch (error) {
    if (!(error instanceof TRPCClientError)) throw error;
    return {
      name: error.name,
      message: error.message,
      code: error.data?.code,
      httpStatus: error.data?.httpStatus,
      path: error.data?.path,
      problems: error.data?.problems,
      shapeCode: error.shape?.code,
      shapeProblems: error.shape?.data?.problems,
    };
  }
  throw new Error(`an invalid blueprint was accepted: ${JSON.stringify(saved)}`);
}

const scenarios = { run, invalid };

function fail(reason) {
  console.error(reason?.stack ?? String(reason));
  process.exit(1);
}

if (!baseUrl || !(scenario in scenarios)) {
  console.error(`usage: node executions.mjs <baseUrl> <${Object.keys(scenarios).join("|")}>`);
  process.exit(2);
}
process.on("unhandledRejection", fail);
setTimeout(() => {
  console.error(`${scenario} did not finish within ${DEADLINE_MS} ms`);
  process.exit(3);
}, DEADLINE_MS).unref();
try {
  const result = await scenarios[scenario]();
  const line = JSON.stringify({ result, requests }) + "\n";
  process.stdout.write(line, () => process.exit(0));
} catch (error) {
  fail(error);
}
