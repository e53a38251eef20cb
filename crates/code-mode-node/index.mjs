// A TanStack AI Code Mode `IsolateDriver` on code-mode's native QuickJS sandbox.
//
//   import { createNativeQuickJSIsolateDriver } from '@code-mode/isolate-quickjs-native'
//   const driver = createNativeQuickJSIsolateDriver({ timeout: 30000 })
//
// The factory, its options and defaults, `createContext(config)`, `execute(code)` and
// `dispose()` follow `@tanstack/ai-code-mode`'s `IsolateDriver`, `IsolateConfig`,
// `IsolateContext`, `ExecutionResult` and `NormalizedError`: bindings keyed by global name,
// `execute` never rejects, error names and `logs` lines as TanStack's drivers give them,
// globals kept between executions of one context. Tool calls run on Node's event loop,
// concurrently when the program uses `Promise.all`; the program runs on the addon's own
// threads, so a busy program never blocks the event loop (`execute` waits at most
// `spinMicros` for a quick program's answer before it returns a pending promise).
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)

// The platforms a build exists for (napi-rs layout: one optional package per platform,
// `npm/<platform>/`). Only what was built and loaded is listed.
const BUILT = ['linux-x64-gnu']

/** `linux-x64-gnu`, `linux-x64-musl`, `darwin-arm64`, `win32-x64-msvc`, ... for this process. */
function platform() {
  const { platform: os, arch } = process
  if (os === 'linux') {
    const glibc = process.report?.getReport?.()?.header?.glibcVersionRuntime
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
  }
  if (os === 'win32') return `win32-${arch}-msvc`
  return `${os}-${arch}`
}

function load() {
  // An explicit build (tests, benchmarks), then a local build next to this file (a checkout
  // after `cargo xtask node`), then the platform's package.
  if (process.env.CODE_MODE_NODE_ADDON) return require(process.env.CODE_MODE_NODE_ADDON)
  const local = path.join(here, 'code-mode-node.node')
  try {
    return require(local)
  } catch (error) {
    if (error?.code !== 'MODULE_NOT_FOUND') throw error
  }
  const name = platform()
  try {
    return require(`@code-mode/isolate-quickjs-native-${name}`)
  } catch (error) {
    if (error?.code !== 'MODULE_NOT_FOUND') throw error
    throw new Error(
      BUILT.includes(name)
        ? `@code-mode/isolate-quickjs-native: its ${name} build is not installed (the optional dependency @code-mode/isolate-quickjs-native-${name} is missing; reinstall without --omit=optional)`
        : `@code-mode/isolate-quickjs-native has no build for ${name} (Node ${process.version}); builds exist for: ${BUILT.join(', ')}`,
    )
  }
}

const native = load()

const DEFAULTS = {
  timeout: 30000, memoryLimit: 128, maxStackSize: 524288, maxToolCalls: 1000, spinMicros: 200,
  maxResultBytes: 4 * 1024 * 1024, maxLogEntries: 10000, maxLogBytes: 1024 * 1024,
}

function message(error) {
  if (error instanceof Error) return error.message
  if (error && typeof error === 'object' && typeof error.message === 'string') return error.message
  return String(error)
}

/**
 * @param {import('./index.d.ts').NativeQuickJSIsolateDriverConfig} [config]
 * @returns {import('./index.d.ts').IsolateDriver}
 */
export function createNativeQuickJSIsolateDriver(config = {}) {
  const defaults = {
    timeout: config.timeout ?? DEFAULTS.timeout,
    memoryLimit: config.memoryLimit ?? DEFAULTS.memoryLimit,
    maxStackSize: config.maxStackSize ?? DEFAULTS.maxStackSize,
    maxToolCalls: config.maxToolCalls ?? DEFAULTS.maxToolCalls,
    spinMicros: config.spinMicros ?? DEFAULTS.spinMicros,
    maxResultBytes: config.maxResultBytes ?? DEFAULTS.maxResultBytes,
    maxLogEntries: config.maxLogEntries ?? DEFAULTS.maxLogEntries,
    maxLogBytes: config.maxLogBytes ?? DEFAULTS.maxLogBytes,
  }
  // Bindings of the live contexts, by id; one entry point for all their tool calls:
  // `<call id>\n<context id>\n<global name>\n<input JSON>`, answered with
  // `nativeDriver.settle(call id, answer)` once the tool's promise settles.
  const live = new Map()
  let nextId = 0
  const answer = async (binding, input) => {
    try {
      if (!binding) throw new Error('the context was disposed')
      const value = await binding.execute(JSON.parse(input))
      return JSON.stringify({ ok: value === undefined ? null : value })
    } catch (error) {
      // As in TanStack's drivers, the program sees a plain Error with the message.
      return JSON.stringify({ err: { name: 'Error', message: message(error) } })
    }
  }
  const dispatch = (request) => {
    const first = request.indexOf('\n')
    const second = request.indexOf('\n', first + 1)
    const third = request.indexOf('\n', second + 1)
    const call = Number(request.slice(0, first))
    const binding = live.get(Number(request.slice(first + 1, second)))?.[request.slice(second + 1, third)]
    answer(binding, request.slice(third + 1)).then((text) => nativeDriver.settle(call, text))
  }
  const nativeDriver = new native.NativeDriver(dispatch)
  return {
    async createContext(isolateConfig) {
      const bindings = isolateConfig?.bindings ?? {}
      const id = nextId
      nextId = (nextId + 1) >>> 0
      const context = nativeDriver.createContext({
        id,
        timeoutMs: Math.max(1, isolateConfig?.timeout ?? defaults.timeout),
        memoryMb: isolateConfig?.memoryLimit ?? defaults.memoryLimit,
        stackBytes: defaults.maxStackSize,
        maxToolCalls: defaults.maxToolCalls,
        maxResultBytes: defaults.maxResultBytes,
        maxLogEntries: defaults.maxLogEntries,
        maxLogBytes: defaults.maxLogBytes,
        spinMicros: defaults.spinMicros,
        bindings: Object.keys(bindings),
      })
      live.set(id, bindings)
      let disposed = false
      return {
        async execute(code) {
          if (disposed) {
            return { success: false, error: { name: 'DisposedError', message: 'Context has been disposed' }, logs: [] }
          }
          try {
            const outcome = JSON.parse(await context.execute(String(code)))
            if (outcome.ok) {
              const result = { success: true, logs: outcome.logs }
              if ('value' in outcome) result.value = outcome.value
              return result
            }
            const { name, message: text } = outcome.error
            return { success: false, error: { name, message: text }, logs: outcome.logs }
          } catch (error) {
            return { success: false, error: { name: 'Error', message: message(error) }, logs: [] }
          }
        },
        async dispose() {
          if (disposed) return
          disposed = true
          live.delete(id)
          context.dispose()
        },
      }
    },
  }
}

export default createNativeQuickJSIsolateDriver
