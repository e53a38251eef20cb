// Measures one scenario on one published TanStack isolate driver, the same way the Rust
// benchmarks do: a fresh context per run (create, execute, dispose), an `external_echo`
// tool that returns its input, runs spaced by 0.3 ms. Prints one JSON line:
// {"median_ns": N, "runs": N} or {"error": "..."}. `cargo xtask bench` runs it once per
// (driver, scenario) in its own process, because TanStack's QuickJS driver can crash the
// process on sequential awaited tool calls.
//
// `native` is this workspace's Node-API addon (`crates/code-mode-node`, built by `cargo xtask
// bench`), measured the same way beside TanStack's drivers.
//
// Usage: node --no-node-snapshot bench.mjs <node|quickjs|native> <seconds> < code
import { readFileSync } from 'node:fs'

const [driverName, secondsArg] = process.argv.slice(2)
const code = readFileSync(0, 'utf8')
const seconds = Number(secondsArg || 3)

async function makeDriver(name) {
  if (name === 'node') {
    const { createNodeIsolateDriver } = await import('@tanstack/ai-isolate-node')
    return createNodeIsolateDriver({ timeout: 30000 })
  }
  if (name === 'quickjs') {
    const { createQuickJSIsolateDriver } = await import('@tanstack/ai-isolate-quickjs')
    return createQuickJSIsolateDriver({ timeout: 30000 })
  }
  if (name === 'native') {
    const { createNativeQuickJSIsolateDriver } = await import('../../crates/code-mode-node/index.mjs')
    return createNativeQuickJSIsolateDriver({ timeout: 30000 })
  }
  throw new Error(`unknown driver ${name}`)
}

const bindings = {
  external_echo: {
    name: 'external_echo',
    description: 'Echo.',
    inputSchema: { type: 'object' },
    execute: async (args) => args,
  },
}

const pause = () => new Promise((r) => setTimeout(r, 0.3))

try {
  const driver = await makeDriver(driverName)
  // Context creation is inside the measurement, as in the Rust scenarios.
  const measure = async () => {
    const started = process.hrtime.bigint()
    const ctx = await driver.createContext({ bindings, timeout: 30000, memoryLimit: 128 })
    const r = await ctx.execute(code)
    await ctx.dispose()
    if (!r.success) throw new Error(`program failed: ${JSON.stringify(r.error)}`)
    return Number(process.hrtime.bigint() - started)
  }
  const warmUntil = Date.now() + 1000
  while (Date.now() < warmUntil) await measure()
  const samples = []
  const until = Date.now() + seconds * 1000
  while ((Date.now() < until || samples.length < 5) && samples.length < 5000) {
    await pause()
    samples.push(await measure())
  }
  samples.sort((a, b) => a - b)
  console.log(JSON.stringify({ median_ns: samples[Math.floor(samples.length / 2)], runs: samples.length }))
} catch (e) {
  console.log(JSON.stringify({ error: String(e && e.message ? e.message : e) }))
  process.exitCode = 1
}
