// What the scenario scripts share: the official clients on a recording fetch, error reports,
// polling with a deadline, and the runner that prints one JSON report to stdout.
//
// A scenario is an async function of its argument (a JSON value passed after its name on the
// command line) that returns what it saw. The runner prints {result, requests} when it ends,
// {error, trail, requests} when it throws (exit 1) and {timedOut, trail, requests} when the
// deadline passes first (exit 3): `note()` adds to the trail, so a failure says how far it got.
import {
  createTRPCUntypedClient,
  httpBatchLink,
  httpLink,
  httpSubscriptionLink,
  TRPCClientError,
} from "@trpc/client";
import { EventSource } from "eventsource";
import superjson from "superjson";

export const ENDPOINT = "/api/trpc";
export const FINAL = new Set(["completed", "failed", "cancelled"]);
const DEADLINE_MS = 75_000; // the whole scenario; pytest's own timeout is a little longer
const WAIT_MS = 40_000; // any one wait for a state
const POLL_EVERY_MS = 50; // well under the server's default rate limit (100 calls/s)

export const requests = [];
const trail = [];

/** Adds what a scenario saw to the report a failure or the deadline prints. */
export function note(label, value) {
  trail.push({ label, value });
  return value;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function connect(baseUrl) {
  const url = baseUrl.replace(/\/$/, "") + ENDPOINT;

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

  const make = (link) =>
    createTRPCUntypedClient({
      links: [link({ url, transformer: superjson, fetch: recordingFetch })],
    });
  return {
    url,
    /** One HTTP request per call: calls issued together really run concurrently. */
    single: make(httpLink),
    /** Calls issued in the same tick go out as one batched request. */
    batch: make(httpBatchLink),
    subscriptions: createTRPCUntypedClient({
      links: [
        httpSubscriptionLink({
          url,
          transformer: superjson,
          EventSource,
          eventSourceOptions: { fetch: recordingFetch },
        }),
      ],
    }),
  };
}

export function describeError(error) {
  if (!(error instanceof TRPCClientError)) throw error;
  return {
    name: error.name,
    message: error.message,
    code: error.data?.code,
    httpStatus: error.data?.httpStatus,
    path: error.data?.path,
    problems: error.data?.problems,
    shapeCode: error.shape?.code,
  };
}

/** {ok: true, data} or {ok: false, error} for one call; anything but a TRPCClientError throws. */
export async function outcome(call) {
  try {
    return { ok: true, data: await call };
  } catch (error) {
    return { ok: false, error: describeError(error) };
  }
}

/** Each call's outcome, so one failure never hides another call's result. */
export const outcomes = (calls) => Promise.all(calls.map(outcome));

/** The parts of an execution status the scenarios compare. */
export function brief(status) {
  return {
    id: status.id,
    status: status.status,
    progress: status.progress,
    pauseReason: status.pauseReason,
    pausedNodeId: status.pausedNodeId,
    awaitingInput: status.awaitingInput,
    currentStep: status.currentStep,
    completedSteps: status.completedSteps,
    skippedSteps: status.skippedSteps,
    endTime: status.endTime,
    error: status.error,
    retryOf: status.retryOf,
    steps: Object.fromEntries(status.steps.map((step) => [step.nodeId, step.status])),
    ran: status.steps.filter((step) => step.startedAt !== null).map((step) => step.nodeId),
    finalOutputs: status.finalOutputs,
  };
}

export async function statusOf(trpc, executionId) {
  return trpc.query("execution.getExecutionStatus", { executionId });
}

/** Polls until `holds(status)`; throws with the last status seen when WAIT_MS pass first. */
export async function waitFor(trpc, executionId, holds, what) {
  const giveUpAt = Date.now() + WAIT_MS;
  for (;;) {
    const status = await statusOf(trpc, executionId);
    if (holds(status)) return status;
    if (Date.now() > giveUpAt) {
      note(`never ${what}`, brief(status));
      throw new Error(`${executionId} never ${what}: ${JSON.stringify(brief(status))}`);
    }
    await sleep(POLL_EVERY_MS);
  }
}

export const waitEnded = (trpc, id) => waitFor(trpc, id, (s) => FINAL.has(s.status), "ended");

export const waitPaused = (trpc, id) =>
  waitFor(trpc, id, (s) => s.status === "paused", "paused");

/** Until the node's step is running (the execution is then running too). */
export const waitRunning = (trpc, id, nodeId) =>
  waitFor(
    trpc,
    id,
    (s) => s.steps.some((step) => step.nodeId === nodeId && step.status === "running"),
    `ran ${nodeId}`,
  );

/** Starts an inline blueprint; returns its execution id. */
export async function start(trpc, blueprint, options = {}) {
  const started = await trpc.mutation("execution.executeBlueprintWithLogging", {
    blueprint,
    ...options,
  });
  return note("started", started).executionId;
}

/** Every log entry of an execution, paging with afterSeq. */
export async function allLogs(trpc, executionId) {
  const logs = [];
  let afterSeq = 0;
  for (;;) {
    const page = await trpc.query("execution.getLogs", { executionId, afterSeq, limit: 1000 });
    logs.push(...page.logs);
    if (!page.hasMore) return logs;
    afterSeq = page.nextSeq;
  }
}

/** Collects a subscription's data events ({id, data}) until it completes, fails or `until`
 * says enough; `onStarted` and `onEvent` may act (for example continue what it watches). */
export function subscribe(
  client,
  path,
  input,
  { onStarted = () => {}, onEvent = () => {}, until = () => false } = {},
) {
  // `ended`: the server ended it (`return`); `completed` also follows the client leaving.
  const report = { events: [], started: false, ended: false, completed: false, error: null };
  note(`subscription ${path}`, report);
  return new Promise((resolve, reject) => {
    const subscription = client.subscription(path, input, {
      onStarted: () => {
        report.started = true;
        Promise.resolve(onStarted()).catch(reject);
      },
      onData: (event) => {
        report.events.push(event);
        Promise.resolve(onEvent(event, report)).catch(reject);
        if (until(event, report)) {
          subscription.unsubscribe();
          resolve(report);
        }
      },
      onStopped: () => (report.ended = true),
      onComplete: () => {
        report.completed = true;
        resolve(report);
      },
      onError: (error) => {
        report.error = describeError(error);
        subscription.unsubscribe();
        resolve(report);
      },
    });
  });
}

function write(report, code) {
  process.stdout.write(JSON.stringify({ ...report, requests }) + "\n", () => process.exit(code));
}

/** `node <script> <baseUrl> <scenario> [json argument]`: runs one scenario, prints its report. */
export async function main(script, scenarios) {
  const [baseUrl, name, argument] = process.argv.slice(2);
  if (!baseUrl || !(name in scenarios)) {
    console.error(`usage: node ${script} <baseUrl> <${Object.keys(scenarios).join("|")}> [json]`);
    process.exit(2);
  }
  const fail = (error) => write({ error: error?.stack ?? String(error), trail }, 1);
  process.on("unhandledRejection", fail);
  setTimeout(() => write({ timedOut: true, trail }, 3), DEADLINE_MS).unref();
  try {
    const api = connect(baseUrl);
    const result = await scenarios[name](api, argument === undefined ? null : JSON.parse(argument));
    write({ result }, 0);
  } catch (error) {
    fail(error);
  }
}
