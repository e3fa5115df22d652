/**
 * The queue SQL the README and docs/queue.md tell people to run (the enqueue
 * example and the `supabase db query` statements for inspecting the queue), run
 * verbatim against the migrated database, so the docs cannot drift from the
 * migrations.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PROJECT_ROOT } from "../../local/project/mod.ts";
import { freshDatabase } from "../_harness/database.ts";

const DOCS = ["README.md", "docs/queue.md"];
const texts = Object.fromEntries(
  await Promise.all(
    DOCS.map(async (doc) => [doc, await Deno.readTextFile(join(PROJECT_ROOT, doc))] as const),
  ),
);

/** The document's ```sql block that starts with `start`. */
function sqlBlock(doc: string, start: string): string {
  const block = [...texts[doc]!.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!)
    .find((b) => b.startsWith(start));
  assert.ok(block, `${doc} has a sql block starting with ${start}`);
  return block;
}

/** The statements of every `supabase db query` example about the queue schema. */
function queryExamples(doc: string): string[] {
  const found = [...texts[doc]!.matchAll(/db query(?:[^"\n`]|\\\n)*"([^"]+)"/g)].map((m) => m[1]!);
  return [...new Set(found.filter((q) => /\bqueue\./.test(q)))];
}

for (const doc of DOCS) {
  Deno.test(`${doc}: the SQL enqueue example runs and sets every option`, async () => {
    await using db = await freshDatabase();
    const [row] = await db.sql.unsafe(sqlBlock(doc, "select queue.enqueue("));
    const id = Object.values(row!)[0];
    const [job] = await db.sql`
    select job_type, payload, priority, max_attempts, dedupe_key, queue_name,
      run_at > now() + interval '50 seconds' as delayed
    from queue.jobs where id = ${id as string}`;
    assert.deepEqual({ ...job }, {
      job_type: "webhook.deliver",
      payload: { url: "https://hooks.example.com/orders", body: { orderId: 42 } },
      priority: 10,
      max_attempts: 8,
      dedupe_key: "order-42-paid",
      queue_name: "default",
      delayed: true,
    });
    const [again] = await db.sql.unsafe(sqlBlock(doc, "select queue.enqueue("));
    assert.equal(Object.values(again!)[0], id, "the dedupe key returns the live job's id");
  });

  Deno.test(`${doc}: every db query example on the queue runs`, async () => {
    await using db = await freshDatabase();
    const queries = queryExamples(doc);
    assert.ok(queries.some((q) => q.includes("queue.stats()")), queries.join("\n"));
    assert.ok(queries.some((q) => q.includes("queue.dead_letters")), queries.join("\n"));
    assert.ok(queries.some((q) => q.includes("queue.requeue_dead_letter")), queries.join("\n"));
    // The dead letter the requeue example names, so it runs unchanged.
    const id = Number(/requeue_dead_letter\((\d+)\)/.exec(queries.join("\n"))?.[1]);
    await db.sql`
    insert into queue.dead_letters (id, queue_name, job_type, payload, priority, attempts,
      max_attempts, reason, last_error, errors, created_at)
    values (${id}, 'default', 'webhook.deliver', '{"url": "https://example.com"}', 0, 8, 8,
      'http_404', 'http 404', '[]', now())`;
    for (const query of queries) await db.sql.unsafe(query);
    const [back] = await db.sql`select count(*)::int as n from queue.jobs where id = ${id}`;
    assert.equal(back!.n, 1, "the requeue example put the dead letter back");
  });
}
