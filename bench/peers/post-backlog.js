'use strict'
// Posts exactly COUNT copies of a body to URL, CONNECTIONS at a time, over
// keep-alive connections, and exits 1 at the first answer that is not 202 (a
// backlog with holes would make the drain's count wrong). Prints the count and
// the seconds taken. No dependencies: node post-backlog.js URL BODY_FILE COUNT [CONNECTIONS=32]
const http = require('node:http')
const fs = require('node:fs')

const [url, bodyFile, countText, connectionsText = '32'] = process.argv.slice(2)
if (!url || !bodyFile || !countText) {
  console.error('usage: node post-backlog.js URL BODY_FILE COUNT [CONNECTIONS]')
  process.exit(2)
}
const body = fs.readFileSync(bodyFile)
const count = Number(countText)
const connections = Number(connectionsText)
const agent = new http.Agent({ keepAlive: true, maxSockets: connections })

function post () {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST',
      agent,
      timeout: 30000,
      headers: { 'Content-Type': 'application/json', 'Content-Length': body.length }
    }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => {
        if (res.statusCode === 202) resolve()
        else reject(new Error(`answer ${res.statusCode}: ${Buffer.concat(chunks).toString().slice(0, 200)}`))
      })
    })
    req.on('timeout', () => req.destroy(new Error('no answer in 30 s')))
    req.on('error', reject)
    req.end(body)
  })
}

let next = 0
async function lane () {
  while (next < count) {
    next++
    await post()
  }
}

const started = process.hrtime.bigint()
Promise.all(Array.from({ length: Math.min(connections, count) }, lane)).then(() => {
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  console.log(`${count} ${seconds.toFixed(2)}`)
  process.exit(0)
}, (err) => {
  console.error(`post-backlog: ${err.message} (after ${next} posts started)`)
  process.exit(1)
})
