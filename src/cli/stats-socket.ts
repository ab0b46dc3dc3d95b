/**
 * Where a running stratafs answers with its counters: an abstract Unix socket (no file to clean up)
 * named after a hash of the mountpoint, so `strata stats MNT` finds the daemon of MNT. A client
 * connects and reads one JSON document; nothing else is accepted.
 */
import * as crypto from 'node:crypto'
import * as net from 'node:net'

export function statsSocketName(mountpoint: string): string {
  return `\0stratafs-stats:${crypto.createHash('sha256').update(mountpoint).digest('hex').slice(0, 32)}`
}

export function serveStats(mountpoint: string, snapshot: () => object): net.Server {
  const server = net.createServer((conn) => {
    conn.on('error', () => undefined)
    conn.end(`${JSON.stringify(snapshot())}\n`)
  })
  server.on('error', () => undefined)
  server.listen(statsSocketName(mountpoint))
  server.unref()
  return server
}

export function readStats(mountpoint: string, timeoutMs = 5000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let data = ''
    const conn = net.connect(statsSocketName(mountpoint))
    const timer = setTimeout(() => { conn.destroy(); reject(new Error(`no answer from the stratafs daemon of ${mountpoint}`)) }, timeoutMs)
    conn.setEncoding('utf8')
    conn.on('data', (d: string) => { data += d })
    conn.on('end', () => {
      clearTimeout(timer)
      try { resolve(JSON.parse(data)) } catch (err) { reject(err) }
    })
    conn.on('error', (err) => {
      clearTimeout(timer)
      reject(new Error(`no stratafs daemon answers for ${mountpoint} (${(err as NodeJS.ErrnoException).code ?? err.message})`))
    })
  })
}
