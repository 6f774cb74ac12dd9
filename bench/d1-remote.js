// A D1 database in a process of its own, for the request-log benchmark on bare workerd: this
// Worker (on Miniflare, with a local D1) answers the protocol workerd's D1 binding speaks to
// its database service (`POST /query` or `/execute`, one `{ sql, params }` or an array of
// them, run as one transaction; the shape Miniflare's own D1 service answers), so the Worker
// measured pays only its own side of each query, as a deployed Worker does.
function rowsAndColumns(rows) {
  const columns = rows.length ? Object.keys(rows[0]) : [];
  return { columns, rows: rows.map((row) => columns.map((c) => row[c])) };
}

export default {
  async fetch(request, env) {
    let queries = await request.json();
    if (!Array.isArray(queries)) queries = [queries];
    const format = new URL(request.url).searchParams.get('resultsFormat') || 'ARRAY_OF_OBJECTS';
    try {
      const results = await env.DB.batch(queries.map((q) => env.DB.prepare(q.sql).bind(...(q.params || []))));
      return Response.json(results.map((r) => ({
        success: true,
        results: format === 'ROWS_AND_COLUMNS' ? rowsAndColumns(r.results || []) : (r.results || []),
        meta: r.meta,
      })));
    } catch (error) {
      return Response.json({ success: false, error: String(error?.message || error) });
    }
  },
};
