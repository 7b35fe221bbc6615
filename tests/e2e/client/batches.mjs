// Batches with the official tRPC client (httpBatchLink, superjson): the three sources, paths
// that lead out of the blueprints folder, per-batch concurrency, status, list, stop, clearAll.
//
//   node batches.mjs <baseUrl> <scenario> [json]
//
// The json argument names paths the scenario cannot know: {secret, outsideDir, insideFile}.
import { HELD, LONG, QUICK } from "./blueprints.mjs";
import {
  brief,
  main,
  note,
  outcome,
  sleep,
  start,
  statusOf,
  subscribe,
  waitEnded,
  waitPaused,
  waitRunning,
} from "./lib.mjs";

const WAIT_MS = 40_000;

/** Polls batch.getStatus until the batch is no longer running; returns every poll's counts. */
async function batchEnded(trpc, batchId) {
  const polls = [];
  const giveUpAt = Date.now() + WAIT_MS;
  for (;;) {
    const status = await trpc.query("batch.getStatus", { batchId });
    const { completed, running, queued, failed } = status;
    polls.push({ status: status.status, completed, running, queued, failed });
    if (status.status !== "running") return { status, polls };
    if (Date.now() > giveUpAt) {
      note("batch never ended", status);
      throw new Error(`${batchId} never ended: ${JSON.stringify(status)}`);
    }
    await sleep(50);
  }
}

const executionsOf = (trpc, batch) =>
  Promise.all(batch.executions.map(async (e) => statusOf(trpc, e.executionId)));

/** workflows, files (relative and absolute inside the folder) and folder sources. */
async function sources({ batch: trpc }, { insideFile }) {
  const a = await trpc.mutation("blueprint.create", { ...QUICK, name: "e2e batch a" });
  const b = await trpc.mutation("blueprint.create", { ...QUICK, name: "e2e batch b" });
  const workflows = await trpc.mutation("batch.start", {
    source: { type: "workflows", blueprintIds: [a.blueprintId, b.blueprintId] },
    input: { n: 5 },
    metadata: { who: "batch" },
  });
  const files = await trpc.mutation("batch.start", {
    source: { type: "files", paths: ["quick/alpha.json", "failing.json", insideFile] },
  });
  const folder = await trpc.mutation("batch.start", {
    source: { type: "folder", folderPath: "quick" },
  });
  const report = {};
  for (const [name, started] of Object.entries({ workflows, files, folder })) {
    const { status } = await batchEnded(trpc, started.batchId);
    const executions = (await executionsOf(trpc, started)).map((s) => ({
      ...brief(s),
      batchId: s.batchId,
      blueprintId: s.blueprintId,
      metadata: s.metadata,
    }));
    report[name] = { started, status, executions };
  }
  report.blueprintIds = [a.blueprintId, b.blueprintId];
  return report;
}

/** Sources that lead outside the folder (FORBIDDEN) or to nothing; none starts anything. */
async function forbidden({ batch: trpc }, { secret, outsideDir }) {
  const before = await trpc.query("batch.list", {});
  const attempt = (source) => outcome(trpc.mutation("batch.start", { source }));
  const files = (...paths) => attempt({ type: "files", paths });
  const folder = (folderPath) => attempt({ type: "folder", folderPath });
  const report = {
    dotDot: await files("../outside/secret.json"),
    dotDotInside: await files("quick/../../outside/secret.json"),
    absolute: await files(secret),
    link: await files("escape.json"),
    oneBadAmongGood: await files("quick/alpha.json", "../outside/secret.json"),
    folderDotDot: await folder(".."),
    folderAbsolute: await folder(outsideDir),
    folderLink: await folder("escape-dir"),
    missingFile: await files("quick/missing.json"),
    missingFolder: await folder("nowhere"),
    emptyFolder: await folder("empty"),
    noPaths: await files(),
    unknownBlueprint: await attempt({
      type: "workflows",
      blueprintIds: ["bp_1700000000000_zzzzz"],
    }),
  };
  const after = await trpc.query("batch.list", {});
  const active = await trpc.query("execution.listActive");
  return { ...report, totalBefore: before.total, totalAfter: after.total, active };
}

/** Four one-second workflows, two at a time; when each step ran, from the log. */
async function concurrency({ batch: trpc }) {
  const started = await trpc.mutation("batch.start", {
    source: { type: "folder", folderPath: "slow" },
    concurrency: 2,
  });
  const { status, polls } = await batchEnded(trpc, started.batchId);
  const executions = (await executionsOf(trpc, started)).map((s) => ({
    id: s.id,
    status: s.status,
    steps: s.steps.map(({ nodeId, startedAt, completedAt }) => ({
      nodeId,
      startedAt,
      completedAt,
    })),
  }));
  return { started, status, polls, executions };
}

/** batch.stop of a one-at-a-time batch of three: one running stopped, two queued cancelled. */
async function stop({ batch: trpc }) {
  const created = await trpc.mutation("blueprint.create", LONG);
  const id = created.blueprintId;
  const started = await trpc.mutation("batch.start", {
    source: { type: "workflows", blueprintIds: [id, id, id] },
    concurrency: 1,
  });
  const ids = started.executions.map((e) => e.executionId);
  await waitRunning(trpc, ids[0], "wait");
  const before = await trpc.query("batch.getStatus", { batchId: started.batchId });
  const stopped = await trpc.mutation("batch.stop", { batchId: started.batchId });
  const after = await trpc.query("batch.getStatus", { batchId: started.batchId });
  const executions = await Promise.all(ids.map(async (e) => brief(await statusOf(trpc, e))));
  const again = await trpc.mutation("batch.stop", { batchId: started.batchId });
  return { started, before, stopped, after, executions, again };
}

/** Three batches of this scenario, then batch.list: pages, totals and status filters. */
async function list({ batch: trpc }) {
  const created = await trpc.mutation("blueprint.create", QUICK);
  const before = await trpc.query("batch.list", { limit: 100 });
  const mine = [];
  for (const source of [
    { type: "workflows", blueprintIds: [created.blueprintId] },
    { type: "files", paths: ["failing.json"] },
    { type: "folder", folderPath: "quick" },
  ]) {
    const started = await trpc.mutation("batch.start", { source });
    await batchEnded(trpc, started.batchId);
    mine.push(started.batchId);
  }
  const [all, first, second, ...byStatus] = await Promise.all([
    trpc.query("batch.list", { limit: 100 }),
    trpc.query("batch.list", { limit: 2 }),
    trpc.query("batch.list", { limit: 2, offset: 1 }),
    ...["running", "completed", "failed", "cancelled"].map((status) =>
      trpc.query("batch.list", { status, limit: 100 }),
    ),
  ]);
  const badStatus = await outcome(trpc.query("batch.list", { status: "paused" }));
  const badLimit = await outcome(trpc.query("batch.list", { limit: 0 }));
  return { mine, before, all, first, second, byStatus, badStatus, badLimit };
}

/** clearAll with finished batches and executions, a paused execution, and a running batch
 * holding one finished and one paused execution; then the rest ends and is cleared too. */
async function clearAll({ batch: trpc, subscriptions }) {
  const quick = (await trpc.mutation("blueprint.create", QUICK)).blueprintId;
  const held = (await trpc.mutation("blueprint.create", HELD)).blueprintId;
  const finishedBatch = await trpc.mutation("batch.start", {
    source: { type: "workflows", blueprintIds: [quick, quick] },
  });
  const failedBatch = await trpc.mutation("batch.start", {
    source: { type: "files", paths: ["failing.json"] },
  });
  await batchEnded(trpc, finishedBatch.batchId);
  await batchEnded(trpc, failedBatch.batchId);
  const standalone = await start(trpc, QUICK);
  await waitEnded(trpc, standalone);
  const paused = await start(trpc, HELD);
  await waitPaused(trpc, paused);
  const mixed = await trpc.mutation("batch.start", {
    source: { type: "workflows", blueprintIds: [quick, held] },
  });
  const [mixedQuick, mixedHeld] = mixed.executions.map((e) => e.executionId);
  await waitEnded(trpc, mixedQuick);
  await waitPaused(trpc, mixedHeld);

  const cleared = await trpc.mutation("batch.clearAll");
  const batchesAfter = await trpc.query("batch.list", {});
  const executionsAfter = await trpc.query("execution.list", {});
  const gone = {
    finishedBatch: await outcome(trpc.query("batch.getStatus", { batchId: finishedBatch.batchId })),
    standalone: brief(await statusOf(trpc, standalone)),
  };
  const mixedAfterClear = await trpc.query("batch.getStatus", { batchId: mixed.batchId });

  // Clearing deletes log rows: a subscription started afterwards still follows new ones.
  const followed = await subscribe(subscriptions, "execution.onUpdate", { executionId: paused }, {
    onEvent: async (_, report) => {
      if (report.events.length === 1) {
        await trpc.mutation("execution.continue", { executionId: paused });
      }
    },
  });
  await trpc.mutation("execution.continue", { executionId: mixedHeld });
  await waitEnded(trpc, mixedHeld);
  // A batch's counts are written with its executions' records: no need to poll.
  const mixedEnded = await trpc.query("batch.getStatus", { batchId: mixed.batchId });
  const clearedAgain = await trpc.mutation("batch.clearAll");
  const executionsAtEnd = await trpc.query("execution.list", {});
  const batchesAtEnd = await trpc.query("batch.list", {});
  return {
    ids: { standalone, paused, mixedQuick, mixedHeld, mixed: mixed.batchId },
    cleared,
    batchesAfter,
    executionsAfter,
    gone,
    mixedAfterClear,
    followed,
    mixedEnded,
    clearedAgain,
    executionsAtEnd,
    batchesAtEnd,
  };
}

await main("batches.mjs", {
  sources,
  forbidden,
  concurrency,
  stop,
  list,
  "clear-all": clearAll,
});
