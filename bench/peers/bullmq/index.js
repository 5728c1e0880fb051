'use strict'
// The Redis alternative to mews-relay: Node 20, BullMQ 5 on Redis 7.
// Durability comes from Redis itself: run it with `appendonly yes` and
// `appendfsync always`, so the MULTI/Lua script behind queue.add is fsynced to
// the AOF before Redis replies; the receiver answers 202 only after
// queue.add resolved. Delivery: a BullMQ Worker, CONCURRENCY jobs at once,
// 5 attempts with exponential backoff from 1 s; failed jobs are kept (the dead
// letters), completed ones trimmed to the last 1000.
//
//   PORT TOKEN SINK_URL REDIS_PORT [REDIS_HOST=127.0.0.1] [CONCURRENCY=8]
//   [WORKER=on|off|paused] node index.js
const { Queue, Worker } = require('bullmq')
const { receiver, deliverer, whenWorkerStarts, required } = require('../shared/webhook')

const port = Number(required('PORT'))
const connection = {
  host: process.env.REDIS_HOST || '127.0.0.1',
  port: Number(required('REDIS_PORT')),
  maxRetriesPerRequest: null // BullMQ's workers block on Redis; it asks for this
}
const concurrency = Number(process.env.CONCURRENCY || 8)
const log = (line) => console.error(`bullmq-peer: ${line}`)

const queue = new Queue('deliveries', {
  connection,
  defaultJobOptions: {
    attempts: 5,
    backoff: { type: 'exponential', delay: 1000 },
    removeOnComplete: { count: 1000 },
    removeOnFail: false
  }
})
queue.on('error', (err) => log(`queue: ${err.message}`))

const server = receiver({
  token: required('TOKEN'),
  enqueue: async (batch) => (await queue.add('batch', batch)).id,
  log
})

const deliver = deliverer({ url: required('SINK_URL'), concurrency })
const worker = new Worker('deliveries', (job) => deliver(JSON.stringify(job.data)), {
  connection,
  concurrency,
  autorun: false
})
worker.on('error', (err) => log(`worker: ${err.message}`))
worker.on('failed', (job, err) => {
  if (job && job.attemptsMade >= job.opts.attempts) log(`job ${job.id} failed for good: ${err.message}`)
})
whenWorkerStarts(process.env.WORKER || 'on', () => { worker.run() })

server.listen(port, '127.0.0.1', () => log(`listening on 127.0.0.1:${port}`))

async function shutdown () {
  server.close()
  await worker.close()
  await queue.close()
  process.exit(0)
}
process.once('SIGTERM', shutdown)
process.once('SIGINT', shutdown)
