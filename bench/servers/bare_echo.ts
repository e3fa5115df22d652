/** Peer: a bare Deno.serve echo that reads the JSON body and returns its payload. */
export default {
  async fetch(req: Request): Promise<Response> {
    const body = await req.json();
    return Response.json({ data: body.payload });
  },
};
