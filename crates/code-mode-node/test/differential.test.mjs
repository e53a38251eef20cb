// Differential test: every case of `differential/cases.mjs` runs through TanStack's own
// `createCodeModeTool` on this driver and on TanStack's published drivers
// (`@tanstack/ai-isolate-quickjs`, and `@tanstack/ai-isolate-node` where isolated-vm has a
// build for this Node: 22 and 24), each in its own process. Results, error names and
// messages, logs and `code_mode:*` events must match, except where `cases.mjs` states a
// deliberate difference; where a TanStack driver crashes, ours must not.
import test from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { cases } from './differential/cases.mjs'

const runner = fileURLToPath(new URL('./differential/run.mjs', import.meta.url))
const require = createRequire(import.meta.url)

function nodeDriverUnavailable() {
  try {
    require('isolated-vm')
    return null
  } catch (error) {
    return `isolated-vm has no build for Node ${process.version} (ABI ${process.versions.modules})`
  }
}

/** Runs one case on one driver in its own process; `{ crashed }` if it ends without a line. */
function run(driver, c) {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--no-node-snapshot', runner, driver, c.name],
      { timeout: (c.timeout ?? 10000) + 10000, maxBuffer: 16 << 20, env: process.env },
      (error, stdout, stderr) => {
        const line = stdout.trim().split('\n').pop()
        try {
          resolve(JSON.parse(line))
        } catch {
          // Exit 13: Node's event loop emptied while the execution was awaited (it never settles).
          const how = error?.killed ? 'never settled, killed' : error?.code === 13 ? 'never settled' : error?.signal ?? `exit ${error?.code}`
          resolve({ crashed: `${how}: ${stderr.trim().split('\n').slice(0, 3).join(' | ')}` })
        }
      },
    )
  })
}

const theirs = ['quickjs']
const skipNode = nodeDriverUnavailable()
if (skipNode) console.log(`TanStack's node driver left out: ${skipNode}`)
else theirs.push('node')

// Calls in a Promise.all may finish in any order (ours run at once; the isolated-vm driver's
// one after another), so events compare as a sorted list where the case says so.
const comparable = (out, c) => ({ result: out.result, events: c.unordered ? [...out.events].map((e) => JSON.stringify(e)).sort() : out.events })

for (const c of cases) {
  test(`differential: ${c.name}`, async () => {
    const [ours, ...others] = await Promise.all(['native', ...theirs].map((d) => run(d, c)))
    assert.ok(!ours.crashed, `our driver must never crash: ${ours.crashed}`)
    const report = [`ours ${JSON.stringify(ours.outcome ?? ours.result)} (${ours.ms ?? '-'} ms)`]
    theirs.forEach((driver, i) => {
      const out = others[i]
      report.push(`${driver} ${out.crashed ? `CRASHED (${out.crashed})` : `${JSON.stringify(out.outcome ?? out.result)} (${out.ms ?? '-'} ms)`}`)
      if (out.crashed) return // ours ran to its outcome where theirs crashed
      if (c.deliberate) {
        // A difference the README lists: ours is pinned, theirs only reported.
        assert.equal(ours.result.success, c.ours.success ?? false)
        if (c.ours.name) assert.equal(ours.result.error.name, c.ours.name)
        if ('value' in c.ours) assert.deepEqual(ours.result.result, c.ours.value)
        assert.deepEqual(ours.events.map(([n]) => n), out.events.map(([n]) => n), `event kinds as ${driver}'s`)
      } else if (c.ours) {
        if (c.run) {
          assert.deepEqual(ours.outcome, c.ours)
        } else {
          assert.equal(ours.result.success, false)
          assert.equal(ours.result.error.name, c.ours.name)
          assert.equal(out.result.success, false, `${driver} fails too`)
          assert.deepEqual(ours.events, out.events, `events as ${driver}'s`)
        }
      } else if (c.same.includes(driver)) {
        assert.deepEqual(comparable(ours, c), comparable(out, c), `same outcome and events as ${driver}`)
      } else {
        assert.equal(ours.result.success, out.result.success)
        assert.deepEqual(ours.events.map(([n]) => n), out.events.map(([n]) => n), `event kinds as ${driver}'s`)
      }
    })
    if (c.name === '100 calls in Promise.all') {
      assert.ok(ours.mostInFlight >= 50, `our 100 calls overlapped (${ours.mostInFlight} at once)`)
      report.push(`most in flight: ours ${ours.mostInFlight}, ${theirs.map((d, i) => `${d} ${others[i].mostInFlight ?? '-'}`).join(', ')}`)
    }
    console.log(`${c.name}:\n  ${report.join('\n  ')}`)
  })
}
