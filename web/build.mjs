// Builds the browser files that web.go embeds, from their sources:
//
//   tracker/src/glimpse.js         -> tracker/dist/glimpse.js   (minified; gzipped size checked)
//   dashboard/src/index.html, *.js, *.css -> dashboard/dist/index.html (one file, CSS and JS inlined)
//
//   node build.mjs           write the outputs
//   node build.mjs --check   build in memory and fail if the committed outputs differ from
//                            the sources or the tracker is over its size budget
//
// The outputs are committed so `go build` needs no Node; esbuild is pinned in package.json.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import * as esbuild from 'esbuild'

const here = dirname(fileURLToPath(import.meta.url))
export const TRACKER_BUDGET = 1500 // bytes, gzipped

export function gzipSize(text) {
  return gzipSync(Buffer.from(text), { level: 9 }).length
}

export async function buildTracker() {
  const src = readFileSync(join(here, 'tracker/src/glimpse.js'), 'utf8')
  const out = await esbuild.transform(src, {
    loader: 'js',
    minify: true,
    target: 'es2020',
    legalComments: 'none',
    charset: 'utf8',
  })
  return out.code
}

export async function buildDashboard() {
  const dir = join(here, 'dashboard/src')
  const js = await esbuild.build({
    entryPoints: [join(dir, 'app.js')],
    bundle: true,
    minify: true,
    format: 'iife',
    target: 'es2020',
    legalComments: 'none',
    charset: 'utf8',
    write: false,
  })
  const css = await esbuild.transform(readFileSync(join(dir, 'style.css'), 'utf8'), {
    loader: 'css',
    minify: true,
    target: ['chrome111', 'firefox113', 'safari16.2'],
  })
  const html = readFileSync(join(dir, 'index.html'), 'utf8')
  const styleTag = '<link rel="stylesheet" href="style.css">'
  const scriptTag = '<script type="module" src="app.js"></script>'
  if (!html.includes(styleTag) || !html.includes(scriptTag)) {
    throw new Error(`dashboard/src/index.html must contain ${styleTag} and ${scriptTag}`)
  }
  // Functions as replacements, so "$&" and friends in the code are not patterns.
  return html
    .replace(styleTag, () => '<style>' + css.code.trim() + '</style>')
    .replace(scriptTag, () => '<script>' + js.outputFiles[0].text.trim() + '</script>')
}

export const outputs = {
  'tracker/dist/glimpse.js': buildTracker,
  'dashboard/dist/index.html': buildDashboard,
}

async function main() {
  const check = process.argv.includes('--check')
  let failed = false
  for (const [rel, build] of Object.entries(outputs)) {
    const text = await build()
    const file = join(here, rel)
    if (check) {
      let committed = ''
      try { committed = readFileSync(file, 'utf8') } catch {}
      if (committed !== text) {
        console.error(`${rel} does not match its sources: run "npm run build" in web/ and commit the result`)
        failed = true
      }
    } else {
      mkdirSync(dirname(file), { recursive: true })
      writeFileSync(file, text)
    }
    console.log(`${rel}: ${Buffer.byteLength(text)} bytes, ${gzipSize(text)} gzipped`)
  }
  const trackerGz = gzipSize(await buildTracker())
  if (trackerGz > TRACKER_BUDGET) {
    console.error(`tracker is ${trackerGz} bytes gzipped; the budget is ${TRACKER_BUDGET}`)
    failed = true
  }
  if (failed) process.exit(1)
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main()
