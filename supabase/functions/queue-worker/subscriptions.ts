/**
 * The event subscriptions and projections this project's queue-worker drives.
 * Add yours here: `defineSubscription`, `defineProjection` or
 * `defineWebhookSubscription` (docs/events.md).
 */
import { type ConsumerDefinition, defineProjection } from "../_shared/mod.ts";

/**
 * The notes example's read model (`public.note_activity`: per user, notes count
 * and last activity), from the `notes.*` events the trigger on public.notes appends.
 */
export const noteActivity = defineProjection({
  name: "note-activity",
  filter: { streamPrefix: "notes-" },
  apply: async (tx, event) => {
    await tx`select events.apply_note_activity(array[${event.position}]::bigint[])`;
  },
});

/** Every subscription of the queue-worker function. */
export function subscriptionDefinitions(): ConsumerDefinition[] {
  return [noteActivity];
}
