// The committed browser builds (web/*/dist, embedded in the Go binary by web/web.go) must be
// what the sources build to, and the tracker must stay within its size budget.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { repo } from './lib/harness.mjs'

const web = join(repo, 'web')

test('the tracker is at most 1,500 bytes gzipped', () => {
  const built = readFileSync(join(web, 'tracker/dist/glimpse.js'))
  const gz = gzipSync(built, { level: 9 }).length
  console.log(`tracker: ${built.length} bytes, ${gz} bytes gzipped (budget 1500)`)
  assert.ok(gz <= 1500, `tracker/dist/glimpse.js is ${gz} bytes gzipped; the budget is 1500`)
})

test('the committed tracker and dashboard builds match their sources', () => {
  // build.mjs --check rebuilds in memory with the pinned esbuild and compares.
  const out = execFileSync(process.execPath, [join(web, 'build.mjs'), '--check'], { cwd: web, encoding: 'utf8' })
  assert.match(out, /tracker\/dist\/glimpse\.js/)
})

test('the served files are the builds: web.go embeds tracker/dist and dashboard/dist', () => {
  const src = readFileSync(join(web, 'web.go'), 'utf8')
  assert.match(src, /go:embed tracker\/dist\/glimpse\.js/)
  assert.match(src, /go:embed dashboard\/dist/)
})
