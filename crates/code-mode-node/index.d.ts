// Types of `@code-mode/isolate-quickjs-native`: the same shapes as `@tanstack/ai-code-mode`'s
// `IsolateDriver` family, so the driver fits wherever TanStack's drivers do.

export interface NativeQuickJSIsolateDriverConfig {
  /** Execution timeout in milliseconds, tool calls included (default 30000). */
  timeout?: number
  /** Memory limit in MB (default 128). */
  memoryLimit?: number
  /** Stack limit in bytes (default 524288); per driver, not per context. */
  maxStackSize?: number
  /** Tool calls allowed per execution (default 1000). */
  maxToolCalls?: number
  /**
   * Largest value a program may return, in UTF-8 bytes of its JSON (default 4194304, 4 MiB;
   * not in TanStack's config, whose drivers have no cap): a larger one is a
   * `ResultTooLargeError`.
   */
  maxResultBytes?: number
  /**
   * Console lines kept per execution (default 10000; not in TanStack's config): later
   * lines are dropped, with one line saying so.
   */
  maxLogEntries?: number
  /** Console bytes kept per execution (default 1048576, 1 MiB; not in TanStack's config). */
  maxLogBytes?: number
  /**
   * How long `execute` may wait on Node's thread for a quick program's answer, in
   * microseconds (default 200, at most 10000; 0 never waits). Waking Node's sleeping
   * thread to deliver an answer costs tens of microseconds, more than a quick program
   * takes; a program still running after this wait is awaited without blocking anything.
   */
  spinMicros?: number
}

export interface ToolBinding {
  name: string
  description: string
  inputSchema: Record<string, unknown>
  outputSchema?: Record<string, unknown> | undefined
  /**
   * Runs the tool. A method, so that its parameters are compared bivariantly: TanStack's
   * bindings declare `context?: ToolExecutionContext`, which this driver passes through
   * untouched, and a function-typed property with `context?: unknown` made the driver not
   * assignable to TanStack's `IsolateDriver` under `strict` (TS2322).
   */
  execute(args: unknown, context?: unknown): Promise<unknown>
}

export interface IsolateConfig {
  /** Keyed by the global name the program calls (e.g. `external_getWeather`). */
  bindings: Record<string, ToolBinding>
  timeout?: number
  memoryLimit?: number
}

export interface NormalizedError {
  name: string
  message: string
  stack?: string
  code?: string
}

export interface ExecutionResult<T = unknown> {
  success: boolean
  value?: T
  error?: NormalizedError
  logs?: Array<string>
}

export interface IsolateContext {
  /** Never rejects: every failure is a `{ success: false, error }` result. */
  execute: <T = unknown>(code: string) => Promise<ExecutionResult<T>>
  /** Idempotent; later executions report `DisposedError`. */
  dispose: () => Promise<void>
}

export interface IsolateDriver {
  createContext: (config: IsolateConfig) => Promise<IsolateContext>
}

export declare function createNativeQuickJSIsolateDriver(
  config?: NativeQuickJSIsolateDriverConfig,
): IsolateDriver

export default createNativeQuickJSIsolateDriver
