/**
 * The job types this project's queue-worker runs. Add yours here: a definition
 * from `defineJob` (type, zod schema, handler, retry policy).
 */
import { z } from "npm:zod@4";
import {
  defineJob,
  type JobDefinition,
  webhookDeliverJob,
  type WebhookDeps,
} from "../_shared/mod.ts";

/** Example consumer of the outbox trigger on public.notes (migration *_queue_outbox.sql). */
export const notesChanged = defineJob({
  type: "notes.changed",
  schema: z.object({
    type: z.enum(["INSERT", "UPDATE", "DELETE"]),
    table: z.string(),
    record: z.object({ id: z.number(), user_id: z.string() }).passthrough().nullable(),
  }).passthrough(),
  handler: ({ type, record }) => {
    // A real app would index the note, notify its owner, ... Logged here.
    console.log(JSON.stringify({ msg: "note changed", type, id: record?.id ?? null }));
  },
});

/** Every job type of the queue-worker function. */
export function jobDefinitions(webhook: WebhookDeps = {}): JobDefinition[] {
  return [webhookDeliverJob(webhook), notesChanged];
}
