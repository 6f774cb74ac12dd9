// bench/baseline-log.js with the gateway's group commit: the rows of calls ending within 10 ms
// of the first go to D1 in one batch (at most 10), sent by the call that opened it. What the
// same rows cost a JS Worker that batches them: the database's own share of the log's figure.
import { relayAndLog } from './baseline-log.js';

let open = null;

function store(db, statement) {
  if (open && open.statements.length < 10) {
    open.statements.push(statement);
    return Promise.resolve();
  }
  const batch = { statements: [statement] };
  open = batch;
  return new Promise((resolve) => { setTimeout(resolve, 10); }).then(() => {
    if (open === batch) open = null;
    return db.batch(batch.statements);
  });
}

export default {
  fetch(request, env, ctx) {
    return relayAndLog(request, env, ctx, (statement) => store(env.DB, statement));
  },
};
