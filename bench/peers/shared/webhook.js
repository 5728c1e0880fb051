'use strict'
// What both Node peers share, so that they differ only in their queue:
// - receiver(): the public side, shaped like mews-relay's: POST
//   /webhooks/mews?token=..., body up to 1 MiB, must be a JSON object; the
//   peer's enqueue(batch) must resolve only once the batch is durable, and only
//   then is the answer 202. A failed enqueue answers 503 (Mews resends).
// - deliver(): one POST of a batch to the target over keep-alive connections;
//   resolves on 2xx, rejects otherwise (the peer's queue retries it).
// Settings come from the environment (see each peer's index.js).
const http = require('node:http')
const crypto = require('node:crypto')

const MAX_BODY = 1024 * 1024
const PATH = '/webhooks/mews'

function tokenMatches (given, expected) {
  const a = Buffer.from(given || '')
  const b = Buffer.from(expected)
  return a.length === b.length && crypto.timingSafeEqual(a, b)
}

function answer (res, status, body) {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

// enqueue(batch) -> Promise<id>, resolved only after the batch is durable.
function receiver ({ token, enqueue, log }) {
  return http.createServer((req, res) => {
    const url = new URL(req.url, 'http://relay')
    if (url.pathname !== PATH) return answer(res, 404, { error: 'not found' })
    if (req.method !== 'POST') return answer(res, 405, { error: 'method not allowed' })
    if (!tokenMatches(url.searchParams.get('token'), token)) return answer(res, 401, { error: 'invalid token' })
    const chunks = []
    let size = 0
    let tooLarge = false
    req.on('data', (chunk) => {
      size += chunk.length
      if (size > MAX_BODY) tooLarge = true
      else chunks.push(chunk)
    })
    req.on('end', async () => {
      if (tooLarge) return answer(res, 413, { error: 'body too large' })
      let batch
      try {
        batch = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      } catch {
        return answer(res, 400, { error: 'body is not JSON' })
      }
      if (batch === null || typeof batch !== 'object' || Array.isArray(batch)) {
        return answer(res, 400, { error: 'body is not a JSON object' })
      }
      try {
        const id = await enqueue(batch)
        answer(res, 202, { id: String(id) })
      } catch (err) {
        log(`enqueue failed: ${err.message}`)
        answer(res, 503, { error: 'not stored, retry later' })
      }
    })
  })
}

// One agent per process: at most `concurrency` sockets to the target.
function deliverer ({ url, concurrency, timeoutMs = 10000 }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
  return function deliver (body) {
    return new Promise((resolve, reject) => {
      const req = http.request(url, {
        method: 'POST',
        agent,
        timeout: timeoutMs,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }
      }, (res) => {
        res.resume()
        res.on('end', () => {
          if (res.statusCode >= 200 && res.statusCode < 300) resolve()
          else reject(new Error(`HTTP ${res.statusCode}`))
        })
        res.on('error', reject)
      })
      req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)))
      req.on('error', reject)
      req.end(body)
    })
  }
}

// WORKER=on: deliver from the start; off: receive only; paused: deliver from
// the first SIGUSR2 (the benchmark's drain starts the clock there).
function whenWorkerStarts (mode, start) {
  if (mode === 'on') return start()
  if (mode === 'paused') process.once('SIGUSR2', start)
  else if (mode !== 'off') throw new Error(`WORKER must be on, off or paused, not '${mode}'`)
}

function required (name) {
  const value = process.env[name]
  if (!value) {
    console.error(`error: environment variable ${name} is required`)
    process.exit(2)
  }
  return value
}

module.exports = { receiver, deliverer, whenWorkerStarts, required }
