// Runs one differential case (`cases.mjs`) on one driver, through TanStack's own
// `createCodeModeTool`, and prints one JSON line: the tool's result, the `code_mode:*` events
// it emitted (times removed) and the most tool calls seen in flight at once. One process per
// (driver, case): TanStack's QuickJS driver can abort its process.
//
// Usage: node --no-node-snapshot run.mjs <native|quickjs|node> <case name>
import { z } from 'zod'
import { toolDefinition } from '@tanstack/ai'
import { createCodeModeTool } from '@tanstack/ai-code-mode'
import { cases } from './cases.mjs'

const [driverName, caseName] = process.argv.slice(2)
const c = cases.find((x) => x.name === caseName)
if (!c) throw new Error(`no case named ${caseName}`)
const timeout = c.timeout ?? 10000
const memoryLimit = c.memoryLimit ?? 128

async function makeDriver() {
  const options = { timeout, memoryLimit }
  if (driverName === 'native') return (await import('../../index.mjs')).createNativeQuickJSIsolateDriver(options)
  if (driverName === 'quickjs') return (await import('@tanstack/ai-isolate-quickjs')).createQuickJSIsolateDriver(options)
  if (driverName === 'node') return (await import('@tanstack/ai-isolate-node')).createNodeIsolateDriver(options)
  throw new Error(`unknown driver ${driverName}`)
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
let inFlight = 0
let mostInFlight = 0
const tools = [
  toolDefinition({ name: 'echo', description: 'Returns its input.', inputSchema: z.object({}).passthrough() }).server(async (x) => x),
  toolDefinition({ name: 'add', description: 'a + b', inputSchema: z.object({ a: z.number(), b: z.number() }) }).server(async ({ a, b }) => a + b),
  toolDefinition({ name: 'slow', description: 'Returns i after 20 ms.', inputSchema: z.object({ i: z.number() }) }).server(async ({ i }) => {
    inFlight++
    mostInFlight = Math.max(mostInFlight, inFlight)
    await sleep(20)
    inFlight--
    return i
  }),
  toolDefinition({ name: 'fail', description: 'Throws.', inputSchema: z.object({}) }).server(async () => {
    throw new TypeError('tool broke')
  }),
  toolDefinition({ name: 'never', description: 'Never answers.', inputSchema: z.object({}) }).server(() => new Promise(() => {})),
  toolDefinition({ name: 'nothing', description: 'Returns undefined.', inputSchema: z.object({}) }).server(async () => undefined),
]

if (c.run) {
  console.log(JSON.stringify({ outcome: await c.run(await makeDriver()) }))
  process.exit(0)
}

const tool = createCodeModeTool({ driver: await makeDriver(), tools, timeout, memoryLimit })
const events = []
const emitCustomEvent = (name, value) => {
  const { timestamp, duration, ...rest } = value ?? {}
  events.push([name, rest])
}
const started = Date.now()
const result = await tool.execute({ typescriptCode: c.code }, { emitCustomEvent })
if (result.error) delete result.error.stack
console.log(JSON.stringify({ result, events, mostInFlight, ms: Date.now() - started }))
// A context TanStack's drivers leave behind (a timed-out QuickJS VM) must not hold the run.
process.exit(0)
