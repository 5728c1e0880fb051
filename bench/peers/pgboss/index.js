'use strict'
// The PostgreSQL alternative to mews-relay: Node 20, pg-boss 10 on
// PostgreSQL 15 (pg-boss 11+ needs Node 22; 10.x declares node >= 20 and
// PostgreSQL 13+). boss.send is one INSERT in its own transaction; with
// `fsync = on` and `synchronous_commit = on` it resolves only after the WAL
// holding it was flushed, and only then does the receiver answer 202.
// Delivery: CONCURRENCY loops, each fetching one job, delivering it and
// completing or failing it (pg-boss 10's work() waits out its polling interval,
// at least 0.5 s, after every fetch, so fetch/complete is how one keeps a fixed
// number of deliveries in flight). 5 attempts with exponential backoff from
// 1 s; failed jobs stay in the table (the dead letters).
//
//   PORT TOKEN SINK_URL DATABASE_URL [CONCURRENCY=8] [WORKER=on|off|paused]
//   node index.js
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
let running = true

async function deliveryLoop () {
  while (running) {
    let job
    try {
      [job] = await boss.fetch(QUEUE)
    } catch (err) {
      log(`fetch: ${err.message}`)
    }
    if (!job) {
      await sleep(IDLE_POLL_MS)
      continue
    }
    try {
      await deliver(JSON.stringify(job.data))
      await boss.complete(QUEUE, job.id)
    } catch (err) {
      // A failed complete leaves the job active; pg-boss expires and retries it.
      await boss.fail(QUEUE, job.id, { message: err.message }).catch((e) => log(`fail: ${e.message}`))
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
    for (let i = 0; i < concurrency; i++) deliveryLoop()
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
