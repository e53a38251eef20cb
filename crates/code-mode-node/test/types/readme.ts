// The README's snippets, type-checked under `strict` against TanStack's published types
// (`cargo xtask node` runs `tsc -p test/types` before the tests): the driver must be
// assignable wherever TanStack's `IsolateDriver` is expected.
import { createCodeModeTool, createCodeMode } from '@tanstack/ai-code-mode'
import type { IsolateDriver as TanStackDriver } from '@tanstack/ai-code-mode'
import { toolDefinition } from '@tanstack/ai'
import { z } from 'zod'
import { createNativeQuickJSIsolateDriver } from '@code-mode/isolate-quickjs-native'

const getWeather = toolDefinition({
  name: 'getWeather',
  description: 'Weather of a city.',
  inputSchema: z.object({ city: z.string() }),
  outputSchema: z.object({ tempC: z.number() }),
}).server(async ({ city }) => ({ tempC: city.length }))

const tools = [getWeather]

// README: the drop-in line.
const tool = createCodeModeTool({ driver: createNativeQuickJSIsolateDriver(), tools })

// README: every option.
const driver: TanStackDriver = createNativeQuickJSIsolateDriver({
  timeout: 30000,
  memoryLimit: 128,
  maxStackSize: 524288,
  maxToolCalls: 1000,
  maxResultBytes: 4 * 1024 * 1024,
  maxLogEntries: 10000,
  maxLogBytes: 1024 * 1024,
  spinMicros: 200,
})
const { tool: lazyTool, systemPrompt } = createCodeMode({ driver, tools })

export { tool, lazyTool, systemPrompt }
