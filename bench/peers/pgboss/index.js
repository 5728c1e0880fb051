'use strict'
// The PostgreSQL alternative to mews-relay: Node 20, pg-boss 10 on
// PostgreSQL 15 (pg-boss 11+ needs Node 22; 10.x declares node >= 20 and
// PostgreSQL 13+). boss.send is one INSERT in its own transaction; with
// `fsync = on` and `synchronous_commit = on` it resolves only after the WAL
// holding it was flushed, and only then does the receiver answer 202.
// Delivery: CONCURRENCY lanes deliver from jobs claimed CLAIM_AHEAD at a time
// (default 4 × CONCURRENCY, as mews-relay claims ahead of its workers) with
// boss.fetch, each job completed or failed on its own. Why not pg-boss's
// work(): in 10.x it waits out its polling interval (at least 0.5 s) after
// every fetch, however many jobs it found. Why not one fetch per lane: a fetch
// sorts the whole waiting queue (ORDER BY priority, created_on under FOR
// UPDATE SKIP LOCKED; the queue's index is on start_after): 24 ms for a 20k
// backlog here (EXPLAIN ANALYZE), so single-job fetches drained 161 batches/s
// at 10 ms of CPU each, 95% of it in PostgreSQL. Claimed jobs a crash leaves
// unfinished expire (15 min) and are retried. 5 attempts with exponential
// backoff from 1 s; failed jobs stay in the table (the dead letters).
//
//   PORT TOKEN SINK_URL DATABASE_URL [CONCURRENCY=8] [CLAIM_AHEAD=4*CONCURRENCY]
//   [WORKER=on|off|paused] node index.js
const PgBoss = require('pg-boss')
const { receiver, deliverer, whenWorkerStarts, required } = require('../shared/webhook')

const QUEUE = 'deliveries'
const IDLE_POLL_MS = 500
const port = Number(required('PORT'))
const concurrency = Number(process.env.CONCURRENCY || 8)
const log = (line) => console.error(`pgboss-peer: ${line}`)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const boss = new PgBoss({ connectionString: required('DATABASE_URL') })
boss.on('error', (err) => log(`pg-boss: ${err.message}`))

const deliver = deliverer({ url: required('SINK_URL'), concurrency })
const claimAhead = Number(process.env.CLAIM_AHEAD || 4 * concurrency)
const claimed = []
let fetching = null
let running = true

// One fetch at a time, shared by every lane that runs short.
function claimMore () {
  if (!fetching) {
    fetching = boss.fetch(QUEUE, { batchSize: claimAhead })
      .then((jobs) => { claimed.push(...jobs); return jobs.length })
      .catch((err) => { log(`fetch: ${err.message}`); return 0 })
      .finally(() => { fetching = null })
  }
  return fetching
}

async function deliverOne (job) {
  try {
    await deliver(JSON.stringify(job.data))
    await boss.complete(QUEUE, job.id)
  } catch (err) {
    // A failed complete leaves the job active; pg-boss expires and retries it.
    await boss.fail(QUEUE, job.id, { message: err.message }).catch((e) => log(`fail: ${e.message}`))
  }
}

async function lane () {
  while (running) {
    if (claimed.length < concurrency) claimMore()
    const job = claimed.shift()
    if (job) {
      await deliverOne(job)
    } else if ((await claimMore()) === 0) {
      await sleep(IDLE_POLL_MS)
    }
  }
}

async function main () {
  await boss.start()
  if (!(await boss.getQueue(QUEUE))) {
    await boss.createQueue(QUEUE, { retryLimit: 4, retryDelay: 1, retryBackoff: true })
  }
  const server = receiver({
    token: required('TOKEN'),
    enqueue: (batch) => boss.send(QUEUE, batch),
    log
  })
  whenWorkerStarts(process.env.WORKER || 'on', () => {
    for (let i = 0; i < concurrency; i++) lane()
  })
  server.listen(port, '127.0.0.1', () => log(`listening on 127.0.0.1:${port}`))

  const shutdown = async () => {
    running = false
    server.close()
    await boss.stop({ graceful: true, timeout: 5000 })
    process.exit(0)
  }
  process.once('SIGTERM', shutdown)
  process.once('SIGINT', shutdown)
}

main().catch((err) => {
  log(`cannot start: ${err.message}`)
  process.exit(1)
})
