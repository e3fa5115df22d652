/** Peer for cold start: the smallest function. */
export default {
  fetch(): Response {
    return new Response("hello");
  },
};
