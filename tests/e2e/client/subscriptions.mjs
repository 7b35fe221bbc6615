// execution.onUpdate and batch.onUpdate through the official httpSubscriptionLink (SSE, with
// the `eventsource` package as EventSource): live to the end, then resumed from an event id.
//
//   node subscriptions.mjs <baseUrl> <scenario>
//
// Each data event arrives as the link hands it over for tracked events: {id, data}.
import { HELD, QUICK } from "./blueprints.mjs";
import { main, start, subscribe, waitEnded, waitPaused } from "./lib.mjs";

const UNKNOWN = "exec_1700000000000_zzzzz";

/** Paused first, so the subscription sees the run from its snapshot to its end. */
const STAGED = {
  name: "e2e staged",
  nodes: [
    { id: "a", type: "noop" },
    { id: "hold", type: "pause", dependsOn: ["a"] },
    { id: "slow", type: "delay", dependsOn: ["hold"], config: { ms: 100 } },
    { id: "done", type: "transform", dependsOn: ["slow"], config: { expression: "`42`" } },
  ],
};

/** Live until the end; resumed from the middle, from the start, and after the end. */
async function execution({ batch: trpc, subscriptions }) {
  const id = await start(trpc, STAGED);
  await waitPaused(trpc, id);
  let continued = null;
  const live = await subscribe(subscriptions, "execution.onUpdate", { executionId: id }, {
    onEvent: async (_, report) => {
      if (report.events.length === 1) {
        continued = await trpc.mutation("execution.continue", { executionId: id });
      }
    },
  });
  const middle = Math.floor(live.events.length / 2);
  const resumeFrom = live.events[middle]?.id;
  const resumed = await subscribe(subscriptions, "execution.onUpdate", {
    executionId: id,
    lastEventId: resumeFrom,
  });
  const replayed = await subscribe(subscriptions, "execution.onUpdate", {
    executionId: id,
    lastEventId: "0",
  });
  const afterEnd = await subscribe(subscriptions, "execution.onUpdate", { executionId: id });
  const unknown = await subscribe(subscriptions, "execution.onUpdate", { executionId: UNKNOWN });
  const badId = await subscribe(subscriptions, "execution.onUpdate", {
    executionId: id,
    lastEventId: "not-an-id",
  });
  return { id, continued, live, middle, resumeFrom, resumed, replayed, afterEnd, unknown, badId };
}

/** Every execution's events (no id): it never ends by itself; the client leaves. */
async function everything({ batch: trpc, subscriptions }) {
  let started = null;
  const report = await subscribe(subscriptions, "execution.onUpdate", undefined, {
    onStarted: async () => {
      started = await start(trpc, QUICK);
    },
    until: (event) =>
      event.data.type === "execution-update" &&
      event.data.executionId === started &&
      event.data.status === "completed",
  });
  return { started, report };
}

/** A batch of two paused executions: live until the batch ends, then resumed from the live
 * snapshot's id. Each execution's own replay names the log rows that changed it, which are
 * the rows a batch follower sends an update for. */
async function batch({ batch: trpc, subscriptions }) {
  const created = await trpc.mutation("blueprint.create", HELD);
  const id = created.blueprintId;
  const started = await trpc.mutation("batch.start", {
    source: { type: "workflows", blueprintIds: [id, id] },
    concurrency: 2,
  });
  const ids = started.executions.map((e) => e.executionId);
  await Promise.all(ids.map((e) => waitPaused(trpc, e)));
  const live = await subscribe(subscriptions, "batch.onUpdate", { batchId: started.batchId }, {
    onEvent: async (_, report) => {
      if (report.events.length === 1) {
        for (const executionId of ids) {
          await trpc.mutation("execution.continue", { executionId });
        }
      }
    },
  });
  await Promise.all(ids.map((e) => waitEnded(trpc, e)));
  const resumeFrom = live.events[0]?.id;
  const resumed = await subscribe(subscriptions, "batch.onUpdate", {
    batchId: started.batchId,
    lastEventId: resumeFrom,
  });
  const replays = [];
  for (const executionId of ids) {
    replays.push(
      await subscribe(subscriptions, "execution.onUpdate", { executionId, lastEventId: "0" }),
    );
  }
  const afterEnd = await subscribe(subscriptions, "batch.onUpdate", { batchId: started.batchId });
  const unknown = await subscribe(subscriptions, "batch.onUpdate", {
    batchId: "batch_1700000000000_zzzzz",
  });
  return { batchId: started.batchId, ids, live, resumeFrom, resumed, replays, afterEnd, unknown };
}

await main("subscriptions.mjs", { execution, everything, batch });
